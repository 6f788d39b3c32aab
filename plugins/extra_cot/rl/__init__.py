"""Stage 3: CHRPO on stock verl (reward, estimator, verl plugin, RL data builder).

Importing this package imports no host; ``extra_cot.rl.verl_plugin`` is the verl adapter.
"""
