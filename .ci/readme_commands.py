"""Print the README's set-up commands, one per line, exactly as written: the first two ```bash blocks
after the heading that says "two commands" (comment lines dropped, lines of a block joined with &&).

.ci/run executes what this prints, so CI runs the README's commands and nothing else; the same rule
as ../shared/tools/readme-fresh-check, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands(readme: str) -> list[str]:
    heading = re.search(r"^#+ .*two commands.*$", readme, re.I | re.M)
    if heading is None:
        raise SystemExit("README.md has no heading containing 'two commands'")
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme[heading.end():], re.S)[:2]
    if len(blocks) < 2:
        raise SystemExit("README.md's set-up section needs two code blocks")
    return [" && ".join(line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#"))
            for block in blocks]


if __name__ == "__main__":
    print("\n".join(setup_commands((ROOT / "README.md").read_text(encoding="utf-8"))))
    sys.exit(0)
