"""Prints the installed versions of the pinned packages and fails unless they are the pins.

    python .ci/check_versions.py .ci/colab-constraints.txt jax jaxlib flax optax ...

Reads ``name==version`` lines from the constraints file; every package named on the command
line must be pinned there and installed at exactly that version.
"""

import re
import sys
from importlib import metadata


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str]) -> int:
    path, *names = argv
    pins = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    wrong = []
    for name in names:
        pinned = pins.get(canonical(name))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        ok = pinned is not None and installed == pinned
        print(f"{name:<18} installed {installed or '(missing)':<10} pinned {pinned or '(no pin)'}")
        if not ok:
            wrong.append(name)
    if wrong:
        print(f"not the pinned versions: {', '.join(wrong)}", file=sys.stderr)
        return 1
    print(f"python {sys.version.split()[0]}: every checked package is at its pinned version")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
