"""Stage 1: the formula-aware, question-aligned CoT compressor and the SFT data builder.

Modules: ``segment`` (words + atomic formulas), ``scorers`` (``lm`` / ``classifier`` /
``heuristic`` by name), ``select`` (budgeted selection with the target tokenizer), ``filters``
(degeneracy), ``pipeline`` (one CoT → every ratio, input readers), ``cli`` (``extra-cot
compress``), ``label`` (teacher via an OpenAI-compatible server), ``train`` (token-classifier
student), ``build_sft`` (``extra-cot build-sft``). Importing this package imports no torch.
"""
