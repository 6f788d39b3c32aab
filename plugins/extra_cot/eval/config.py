"""Options of one ``extra-cot eval`` sweep, spelled once: the dataclass is the CLI (see
:mod:`extra_cot.cliargs`) and is saved as ``OUT/eval_config.json``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from extra_cot.cliargs import nested, option
from extra_cot.eval.client import BUDGET_MODES, SamplingOptions
from extra_cot.eval.datasets import DatasetSpec, parse_dataset_spec
from extra_cot.tokens import RATIO_DIRS, ratio_dir_name

SERVER, DATA, CLIENT = "server", "data and sweep", "client"


def parse_endpoints(text: str) -> list[str]:
    """``--endpoints host1:8000,https://node2/llm`` -> ``["host1:8000", "https://node2/llm"]``.

    An entry is ``HOST:PORT`` (served over http) or a URL with any scheme, kept as given (a
    trailing ``/v1`` is dropped: it is added to every entry)."""
    out = [e.strip().rstrip("/").removesuffix("/v1") for e in text.split(",") if e.strip()]
    bad = [e for e in out if not (urlsplit(e).netloc if "://" in e else e.rpartition(":")[2].isdigit())]
    if bad:
        raise ValueError(f"--endpoints entries need HOST:PORT or a URL, got {bad}; "
                         "e.g. --endpoints node1:8000,https://node2.example")
    return out


def parse_ratios(text: str) -> list[str]:
    """``--ratios`` comma list -> canonical run folder names (raises naming the valid values)."""
    return [ratio_dir_name(r) for r in text.split(",") if r.strip()]


@dataclass
class EvalConfig:
    """All options of one sweep (saved as OUT/eval_config.json)."""

    output_dir: str = option("--output_dir", "--output-dir", group=DATA)
    datasets: list[DatasetSpec] = option(
        "--dataset",
        group=DATA,
        parse=parse_dataset_spec,
        cli_default=[],
        action="append",
        metavar="NAME=PATH[:FORMAT[:QF:AF]]",
        help="repeatable; FORMAT gsm8k|math|amc|generic (guessed from NAME); PATH may be "
        "hf:<id>[@config]:<split> where the hub is reachable",
    )
    ratios: list[str] = option(
        group=DATA,
        parse=parse_ratios,
        cli_default=",".join(RATIO_DIRS),
        help="comma list of 0.2..1.0, policy (<COMP_AUTO>), base (no token)",
    )
    host: str = option(default="127.0.0.1", group=SERVER)
    port: int = option(default=8000, group=SERVER)
    endpoints: list[str] = option(
        default_factory=list,
        group=SERVER,
        parse=parse_endpoints,
        cli_default="",
        metavar="HOST:PORT|URL,...",
        help="several servers of the same model (instead of --host/--port): each request goes to the "
        "one with the fewest outstanding requests; a failing one is benched and its requests retried "
        "on the others; --concurrency is per server",
    )
    model: str = option(default="local_core_model", group=SERVER, help="served model name")
    base_run: str = option(default="base", group=DATA, help="ratio dir used as the ActRatio denominator")
    limit: int | None = option(default=None, group=DATA, help="first N items of each data set")
    force_control: bool = option(
        default=False,
        group=DATA,
        help="fixed ratios: prefill the requested <COMP_xx> and the think opener as the start of the "
        "assistant turn (vLLM continue_final_message), so the budget holds even when the model would "
        "echo another token; policy and base runs are not prefilled (the model chooses)",
    )
    sampling: SamplingOptions = nested(SamplingOptions)
    concurrency: int = option(default=32, group=CLIENT)
    request_timeout_s: float = option(
        "--request-timeout", default=1800.0, group=CLIENT, help="seconds per request"
    )
    retries: int = option(default=5, group=CLIENT, help="retries per request (backoff 1, 2, 4 ... s)")
    tokenizer: str | None = option(
        default=None,
        group=CLIENT,
        help="tokenizer for think-token counts: folder or hub id ORG/NAME[@REV] (default: the server's /tokenize)",
    )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def base_urls(self) -> list[str]:
        """API roots of every server: ``--endpoints``, else ``--host``/``--port``."""
        return [f"{e if '://' in e else 'http://' + e}/v1" for e in self.endpoints] or [self.base_url]

    @property
    def n_samples(self) -> int:
        return self.sampling.n

    def validate(self) -> None:
        if not self.datasets:
            raise ValueError("no --dataset given; e.g. --dataset gsm8k=data/gsm8k_test.jsonl")
        if len({d.name for d in self.datasets}) != len(self.datasets):
            raise ValueError("two --dataset entries share a NAME; give each a distinct NAME=")
        for name, value, low in (
            ("--n-samples", self.sampling.n, 1),
            ("--concurrency", self.concurrency, 1),
            ("--max-tokens", self.sampling.max_tokens, 1),
            ("--retries", self.retries, 0),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if self.sampling.think_budget is not None and self.sampling.think_budget < 0:
            raise ValueError(f"--think-budget must be >= 0 think tokens, got {self.sampling.think_budget}")
        if self.sampling.s1 and (self.sampling.think_budget < 1 or self.sampling.answer_max_tokens < 1):
            raise ValueError("--think-budget-mode s1 needs --think-budget >= 1 and --answer-max-tokens >= 1 "
                             f"(they are max_tokens of its two requests), got {self.sampling.think_budget} "
                             f"and {self.sampling.answer_max_tokens}")
        if self.sampling.think_budget_mode not in BUDGET_MODES:
            raise ValueError(f"--think-budget-mode must be one of {', '.join(BUDGET_MODES)}, "
                             f"got {self.sampling.think_budget_mode!r}")
        if not 0 < self.sampling.top_p <= 1 or self.sampling.temperature < 0:
            raise ValueError("need 0 < --top-p <= 1 and --temperature >= 0")
