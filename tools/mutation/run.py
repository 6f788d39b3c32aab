"""Mutation testing of the method's core with mutmut (``make mutation``).

mutmut 3 imports the mutated code from ``mutants/`` beside ``src/``, ``source/`` or the project root;
ours lives under ``plugins/``, and ``extra_cot_autoload.pth`` imports ``extra_cot`` at interpreter
start-up, before mutmut could put its copy first on ``sys.path``. So this script lays out a staging
folder (``build/mutation`` by default: ``src/extra_cot`` = a copy of ``plugins/extra_cot``, ``tests/``,
``benchmarks/`` (tests read some), ``pyproject.toml``, whose ``[tool.mutmut]`` table names the files
to mutate and the tests that judge them) and runs mutmut there in an interpreter started with ``-S``
(no ``.pth`` files; the venv's site-packages on ``PYTHONPATH``), so every test imports the mutated copy.

Score = (killed + timeout) / (all mutants - skipped): a mutant no test reaches counts as a survivor.
The table per file and every survivor's diff are written to ``<out>/mutation-report.md``; the run
exits 1 when the score is under ``--min-score``.

Examples::

    python tools/mutation/run.py                  # resume the last run (mutmut caches verdicts)
    python tools/mutation/run.py --fresh          # from scratch
    python tools/mutation/run.py --min-score 0.9 --max-children 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# mutmut's exit-code classes (mutmut.__main__.status_by_exit_code) folded into the score's terms
KILLED = {"killed", "timeout"}
NOT_COUNTED = {"skipped", "not checked"}
_SHIM = "import builtins, sys; builtins.exit = builtins.quit = sys.exit; from mutmut.__main__ import cli; cli()"


def stage(out: Path, fresh: bool) -> None:
    """Copy the package, the tests and pyproject.toml into ``out`` (mutmut's verdict cache kept)."""
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = _also_copy()
    for name in ("src", "tests", *extra):
        shutil.rmtree(out / name, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "plugins" / "extra_cot", out / "src" / "extra_cot", ignore=ignore)
    for name in ("tests", *extra):  # the folders tests read beside themselves, from [tool.mutmut] also_copy
        shutil.copytree(ROOT / name, out / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", out / "pyproject.toml")


def _also_copy() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return [name.rstrip("/") for name in config.get("also_copy", [])]


def mutmut(out: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    paths = sysconfig.get_paths()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]])),
               EXTRA_COT_AUTOLOAD="0")
    cmd = [sys.executable, "-S", "-c", _SHIM, *args]
    return subprocess.run(cmd, cwd=out, env=env, text=True, check=False,
                          capture_output=capture)


def collect(out: Path) -> tuple[dict[str, Counter], list[str]]:
    """Per mutated file, a count of verdicts; and the names of the surviving mutants."""
    per_file: dict[str, Counter] = {}
    survivors: list[str] = []
    for meta in sorted((out / "mutants" / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        verdicts = Counter()
        for name, code in data.get("exit_code_by_key", {}).items():
            status = _status(code)
            verdicts[status] += 1
            if status not in KILLED | NOT_COUNTED:
                survivors.append(name)
        if verdicts:
            per_file[str(meta.relative_to(out / "mutants")).removesuffix(".meta")] = verdicts
    return per_file, survivors


def _status(code: int | None) -> str:
    from mutmut.__main__ import status_by_exit_code  # imported late: it reads the cwd's config

    return status_by_exit_code[code]


def score(per_file: dict[str, Counter]) -> tuple[int, int]:
    total = sum(per_file.values(), Counter())
    counted = sum(n for s, n in total.items() if s not in NOT_COUNTED)
    return sum(total[s] for s in KILLED), counted


def report(out: Path, per_file: dict[str, Counter], survivors: list[str]) -> str:
    statuses = sorted(set().union(*per_file.values())) if per_file else []
    lines = ["| file | " + " | ".join(statuses) + " | score |", "|---" * (len(statuses) + 2) + "|"]
    for path, verdicts in per_file.items():
        killed, counted = score({path: verdicts})
        lines.append(f"| {path} | " + " | ".join(str(verdicts[s]) for s in statuses)
                     + f" | {killed / max(counted, 1):.1%} |")
    killed, counted = score(per_file)
    lines.append(f"\n**score {killed}/{counted} = {killed / max(counted, 1):.1%}**\n")
    for name in survivors:
        diff = mutmut(out, "show", name, capture=True).stdout
        lines += [f"### {name}", "```diff", diff.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mutation",
                        help="staging folder (default: build/mutation); mutmut keeps its verdicts there")
    parser.add_argument("--fresh", action="store_true", help="delete the staging folder and its verdicts first")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1,
                        help="mutants tested at once (default: the CPU count)")
    parser.add_argument("--min-score", type=float, default=0.90,
                        help="exit 1 below this share of killed mutants (default: 0.90)")
    args = parser.parse_args(argv)
    stage(args.out, args.fresh)
    run = mutmut(args.out, "run", "--max-children", str(args.max_children))
    if run.returncode != 0:
        print(f"mutation: mutmut run exited {run.returncode} in {args.out}", file=sys.stderr)
        return run.returncode
    os.chdir(args.out)
    per_file, survivors = collect(args.out)
    text = report(args.out, per_file, survivors)
    (args.out / "mutation-report.md").write_text(text)
    killed, counted = score(per_file)
    print(text.split("\n### ")[0])
    print(f"survivors' diffs: {args.out / 'mutation-report.md'}")
    return 0 if counted and killed / counted >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
