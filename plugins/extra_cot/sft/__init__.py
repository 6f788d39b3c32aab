"""Stage 2 adapter for LLaMA-Factory 0.9.5: template ``qwen3_comp``, the ``extra_cot`` dataset
formatting (1 row -> N mixed-ratio examples), control-token preparation of a model.

Importing this package imports no host; :func:`extra_cot.sft.plugin.register` does the
registration and is called automatically in every interpreter that imports
``llamafactory.data`` (see :mod:`extra_cot._autoload`).
"""
