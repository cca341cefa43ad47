"""Export a trained run as an ONNX graph that takes the raw feature columns (``multitask export``).

    multitask export --run runs/census --format onnx --output census.onnx [--quantize int8]

:func:`to_onnx` writes the graph (preprocessing inside it, one output per task), checked against the
library's own predictions before it is written; :func:`feeds` turns a table into the graph's inputs. Needs
the ``onnx`` extra (``pip install 'multitask[onnx]'``). See ``docs/export.md``.
"""

from multitask.export._inputs import feeds
from multitask.export._onnx import FORMATS, QUANTIZE, TOLERANCE, build, library_predictions, session, to_onnx

__all__ = ["FORMATS", "QUANTIZE", "TOLERANCE", "build", "feeds", "library_predictions", "session", "to_onnx"]
