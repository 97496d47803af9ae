"""Run the README's workflow examples for real, as a new user would, in a scratch folder.

The shipped artifacts (supernet, predictor, device profiles) are linked in; latency tables are NOT,
so workflow 1 (`hwnas profile`) really builds the table that workflows 2 and 3 then use.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## Workflow 1", "## Workflow 2", "## Workflow 3")


def workflow_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for heading in SECTIONS:
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            commands += [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return commands


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="hwnas-readme-"))
    for name in ("checkpoints", "predictors", "devices"):
        os.symlink(ROOT / name, scratch / name)
    for command in workflow_commands():
        print(f"$ {command}", flush=True)
        done = subprocess.run(command, shell=True, cwd=scratch)
        if done.returncode != 0:
            print(f"README example failed (exit {done.returncode}): {command}", file=sys.stderr)
            return 1
    print(f"README workflow examples: {len(workflow_commands())} commands ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
