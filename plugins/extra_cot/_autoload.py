"""Placeholder: the LLaMA-Factory activation hook (owned by the SFT adapter)."""
