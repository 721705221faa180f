"""File output: writes a run's results.json, report.md and PNG plots into a directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.narrative import markdown_report

__all__ = ["sanitize", "write_outputs"]


def sanitize(obj: Any) -> Any:
    """Makes ``obj`` strict-JSON: non-finite floats -> None, tuples -> lists, paths -> str."""
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return sanitize(obj.item())
    return obj


def write_outputs(results: dict[str, Any], out: Path, *, plots: bool = True) -> dict[str, Any]:
    """Writes results.json, report.md and (optionally) the PNG plots into ``out``.

    Returns:
      ``{"json": path, "markdown": path, "plots": [paths], "plot_error": str | None}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plot_error = None
    if plots:
        try:
            from benchmarks.plots import write_plots

            written = write_plots(results, out)
        except ImportError as e:
            plot_error = f"plots skipped: {e}"
    json_path = out / "results.json"
    json_path.write_text(json.dumps(sanitize(results), indent=1, allow_nan=False) + "\n")
    md_path = out / "report.md"
    md_path.write_text(markdown_report(results, written))
    return {"json": json_path, "markdown": md_path, "plots": written, "plot_error": plot_error}
