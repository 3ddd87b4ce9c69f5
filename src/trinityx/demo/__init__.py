"""`trinityx demo`: the whole pipeline on the embedded SmolLM2, and what it buys, in minutes.

pipeline.py runs the stages (reusing finished ones), console.py keeps the terminal readable,
showcase.py and heldout.py produce what is shown, report.py writes it.
"""

from trinityx.demo.pipeline import run_demo

__all__ = ["run_demo"]
