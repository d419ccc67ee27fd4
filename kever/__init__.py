"""kever: explained visual-emotion judgments.

The library API lives in the subpackages: ``kever.agent`` (the reasoner),
``kever.tools`` (perception, knowledge base), ``kever.evals`` (evaluation harness).
"""

__version__ = "0.1.0"
