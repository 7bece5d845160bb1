"""The quickstart notebook runs top to bottom on the tiny config (nbclient, the venv's own kernel).

``OVSNET_NB_STEPS`` shortens its training; a probe cell appended to the in-memory copy reads the trainer's
step count, so the test sees that the notebook honoured it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVSNET_NB_STEPS", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("print('trained steps:', trainer.global_step)"))
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "paths:" in text and "objects" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the overlays must be shown inline"
    assert "trained steps: 2\n" in text, "the notebook must train OVSNET_NB_STEPS steps"
