"""Evaluation (issue 4): ratio sweeps against an OpenAI-compatible vLLM server, metrics, plots.

``server`` starts a local vLLM server; ``datasets`` loads items; ``client`` talks to the server;
``runner`` runs a sweep into the output tree (``store``); ``metrics`` is pure; ``cli``/``plot`` are
the ``extra-cot eval`` / ``extra-cot plot`` commands.
"""
