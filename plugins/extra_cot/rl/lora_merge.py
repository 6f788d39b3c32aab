"""Turn a LoRA RL checkpoint of verl into one plain HF model folder (adapter merged, control rows folded).

    python -m extra_cot.rl.lora_merge --local_dir OUT/global_step_N/actor --target_dir OUT_hf

verl's own ``python -m verl.model_merger merge`` writes the base weights plus a ``lora_adapter/``
folder built from the ``lora_`` tensors only: it drops the trained control-token rows (peft's
``trainable_tokens_delta``, added by :mod:`extra_cot.rl.lora`) and saves the wrapped embedding
under a name no loader knows. This command reuses verl's ``FSDPModelMerger`` to gather the FSDP
shards and replaces only its final save: it rebuilds the peft model verl trained (rank and alpha
from verl's ``lora_train_meta.json``, targets from the tensor names, the rows from the saved
tokenizer's control tokens), loads the checkpoint into it strictly, and saves
``merge_and_unload()``: a folder vLLM and transformers load as is. A checkpoint without trained rows
is handed to verl's own save unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from extra_cot.hostcheck import require_version
from extra_cot.rl.lora import EMBEDDING, WHAT, control_token_ids

logger = logging.getLogger(__name__)

DELTA = "trainable_tokens_delta"


def lora_targets(state_dict: dict[str, Any]) -> list[str]:
    """Module names (last component) that carry LoRA A/B tensors, e.g. ``["down_proj", "q_proj"]``."""
    return sorted({k.split(".lora_A.")[0].rsplit(".", 1)[-1] for k in state_dict if ".lora_A." in k})


def merged_model(state_dict: dict[str, Any], hf_config: Any, tokenizer: Any, lora_meta: dict | None) -> Any:
    """The peft model verl trained, loaded strictly from ``state_dict``, with LoRA and rows merged."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = lora_targets(state_dict)
    ids = control_token_ids(tokenizer)
    deltas = {k: v for k, v in state_dict.items() if DELTA in k}
    if not targets or not ids or any(v.shape[0] != len(ids) for v in deltas.values()):
        raise ValueError(f"{WHAT}: checkpoint has LoRA targets {targets}, row deltas "
                         f"{ {k: tuple(v.shape) for k, v in deltas.items()} } and the tokenizer {len(ids)} "
                         "control tokens: they do not describe one LoRA run with trainable control rows")
    rank = int((lora_meta or {}).get("r") or next(v for k, v in state_dict.items() if ".lora_A." in k).shape[0])
    alpha = int((lora_meta or {}).get("lora_alpha") or rank)
    dtype = next(iter(state_dict.values())).dtype
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    base = base.to_empty(device="cpu")
    model = get_peft_model(base, LoraConfig(task_type=TaskType.CAUSAL_LM, r=rank, lora_alpha=alpha,
                                            target_modules=targets, bias="none",
                                            trainable_token_indices={EMBEDDING: ids}))
    result = model.load_state_dict(state_dict, strict=False)
    # tied heads: verl's state dict may hold the head's copy or not; every other key must match
    missing = [k for k in result.missing_keys if "lm_head" not in k or not hf_config.tie_word_embeddings]
    if missing or result.unexpected_keys:
        raise ValueError(f"{WHAT}: checkpoint does not fit the rebuilt peft model: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    logger.info("merging LoRA (r=%d, alpha=%d, %s) and control rows %s", rank, alpha, targets, ids)
    merged = model.merge_and_unload()
    if hf_config.tie_word_embeddings:
        merged.tie_weights()
    return merged


def read_lora_meta(local_dir: str | Path) -> dict | None:
    """verl's ``lora_train_meta.json`` (``r``, ``lora_alpha``, ``task_type``) of a checkpoint, if any."""
    path = Path(local_dir) / "lora_train_meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _merger_class() -> type:
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    class LoraRowsMerger(FSDPModelMerger):
        """verl's FSDP merger with a save that keeps the trained control rows."""

        def save_hf_model_and_tokenizer(self, state_dict):
            if not any(DELTA in k for k in state_dict):
                return super().save_hf_model_and_tokenizer(state_dict)
            from verl.utils import hf_tokenizer

            tokenizer = hf_tokenizer(self.hf_model_config_path, trust_remote_code=self.config.trust_remote_code)
            model = merged_model(state_dict, self.model_config, tokenizer, read_lora_meta(self.config.local_dir))
            self.patch_model_generation_config(model).save_pretrained(self.config.target_dir)
            tokenizer.save_pretrained(self.config.target_dir)
            logger.info("saved the merged model to %s", self.config.target_dir)
            return None

    return LoraRowsMerger


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m extra_cot.rl.lora_merge", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m extra_cot.rl.lora_merge --local_dir saves/qwen3-1.7b/chrpo_lora/global_step_100/actor"
               " \\\n      --target_dir saves/qwen3-1.7b/chrpo_lora_hf\n",
    )
    parser.add_argument("--local_dir", required=True, help="verl actor checkpoint folder (global_step_N/actor)")
    parser.add_argument("--target_dir", required=True, help="output HF model folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    require_version("verl", None, WHAT)  # subclasses verl's FSDPModelMerger
    from verl.model_merger.base_model_merger import ModelMergerConfig

    if not Path(args.local_dir).is_dir():
        print(f"error: {args.local_dir} is not a folder (expected global_step_N/actor)", file=sys.stderr)
        return 2
    config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=args.local_dir,
                               target_dir=args.target_dir,
                               hf_model_config_path=str(Path(args.local_dir) / "huggingface"))
    _merger_class()(config).merge_and_save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
