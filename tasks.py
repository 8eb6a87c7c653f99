#!/usr/bin/env python3
"""Project commands that work on a fresh machine with only Python 3.11+:

    python3 tasks.py serve [ARGS]   run the registry (gRPC + Envoy, SQLite)
    python3 tasks.py test [ARGS]    run the test suite (pytest ARGS)
    python3 tasks.py generate       regenerate generated/ from protos/
    python3 tasks.py bench [ARGS]   benchmark (bench/bench.py --help)
    python3 tasks.py soak [ARGS]    mixed load for a while (bench/soak.py --help)
    python3 tasks.py fuzz           10,000 generated hostile requests per surface
    python3 tasks.py lint           ruff (lint, format), mypy --strict (server/, clients/python/)
    python3 tasks.py mutate         mutation score of the rules (tools/mutation.toml); minutes
    python3 tasks.py cli ARGS       any model-registry command (users, keys, ...)
    python3 tasks.py release-contract
                                    when a release is cut: the contract as now
                                    generated becomes protos/released/, the
                                    baseline of the breaking-change check

All but release-contract first make .venv and install the project with its
dependencies into it (again whenever pyproject.toml changes). `test` also
installs clients/node's packages (buf, the Node client's) with `npm ci` where
npm is installed (again whenever its package-lock.json changes)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".installed"
NODE_CLIENT = ROOT / "clients" / "node"
NODE_STAMP = NODE_CLIENT / "node_modules" / ".installed"
DESCRIPTOR_SET = ROOT / "generated" / "modelregistry" / "modelregistry.binpb"
RELEASED_CONTRACT = ROOT / "protos" / "released" / "modelregistry.binpb"


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing the project and its dependencies into .venv", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for arguments in (["--upgrade", "pip"], ["--editable", f"{ROOT}[dev]"]):
        # Quiet unless it fails: an editable build always prints setuptools'
        # notice about folders named like the package (server/ is mapped).
        done = subprocess.run([*pip, *arguments], capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            sys.exit(done.returncode)
    STAMP.write_text(wanted)


def ensure_node_tools() -> bool:
    """Install clients/node's packages (buf among them) with `npm ci`, unless
    they are installed from the current package-lock.json; False when npm is
    not installed."""
    npm = shutil.which("npm")
    if npm is None:
        return False
    lock = (NODE_CLIENT / "package-lock.json").read_bytes()
    wanted = hashlib.sha256(lock + (NODE_CLIENT / "package.json").read_bytes()).hexdigest()
    if NODE_STAMP.exists() and NODE_STAMP.read_text() == wanted:
        return True
    print("installing clients/node's packages (npm ci)", file=sys.stderr)
    # No install scripts: buf's only finds its binary, which npm already
    # installed as an optional dependency for this platform.
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_CLIENT,
        check=True,
    )
    NODE_STAMP.write_text(wanted)
    return True


def release_contract() -> None:
    """The contract as generated now becomes the released one, which `buf
    breaking` (tests/test_contract.py) compares every later change against."""
    RELEASED_CONTRACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DESCRIPTOR_SET, RELEASED_CONTRACT)
    print(f"{RELEASED_CONTRACT.relative_to(ROOT)} is now the released contract; commit it")


COMMANDS = {
    "serve": [str(BIN / "model-registry"), "serve"],
    "cli": [str(BIN / "model-registry")],
    "test": [str(BIN / "python"), "-m", "pytest"],
    "generate": [str(BIN / "python"), str(ROOT / "tools" / "generate_protos.py")],
    "bench": [str(BIN / "python"), str(ROOT / "bench" / "bench.py")],
    "soak": [str(BIN / "python"), str(ROOT / "bench" / "soak.py")],
    # The fuzz tests with 10,000 generated requests per surface; -s shows the counts.
    "fuzz": [str(BIN / "python"), "-m", "pytest", "-s", "-q", "tests/test_fuzz.py"],
}


# Each must pass; all of them run, so one run shows every problem.
LINTERS = [
    [str(BIN / "ruff"), "check", "."],
    [str(BIN / "ruff"), "format", "--check", "."],
    [str(BIN / "mypy")],  # its settings: [tool.mypy] in pyproject.toml
]


def lint() -> int:
    failed = [linter for linter in LINTERS if subprocess.run(linter, cwd=ROOT).returncode]
    for linter in failed:
        print(f"lint: {Path(linter[0]).name} {' '.join(linter[1:])} failed", file=sys.stderr)
    return 1 if failed else 0


def mutate() -> int:
    """cosmic-ray over tools/mutation.toml: every mutant of the rules, the
    unit tests run against each; prints the score and the survivors."""
    config = ROOT / "tools" / "mutation.toml"
    results = ROOT / ".mutation.sqlite"
    results.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    steps = [
        ["cosmic-ray", "init", str(config), str(results)],
        ["cr-filter-operators", str(results), str(config)],  # skips what cannot matter
        ["cosmic-ray", "exec", str(config), str(results)],
    ]
    for step in steps:
        done = subprocess.run([str(BIN / step[0]), *step[1:]], cwd=ROOT, env=env)
        if done.returncode != 0:
            return done.returncode
    report = [str(BIN / "cr-report"), "--show-diff", "--surviving-only", str(results)]
    return subprocess.run(report, cwd=ROOT).returncode


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] == "release-contract":
        release_contract()
        return
    if len(sys.argv) < 2 or (sys.argv[1] not in COMMANDS and sys.argv[1] not in ("lint", "mutate")):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    ensure_venv()
    if sys.argv[1] == "lint":
        sys.exit(lint())
    if sys.argv[1] == "mutate":
        sys.exit(mutate())
    if sys.argv[1] == "test" and not ensure_node_tools():
        print("npm is not installed: the buf and Node client tests are skipped", file=sys.stderr)
    command = COMMANDS[sys.argv[1]] + sys.argv[2:]
    if sys.argv[1] == "fuzz":
        os.environ.setdefault("FUZZ_EXAMPLES", "10000")
    os.chdir(ROOT)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
