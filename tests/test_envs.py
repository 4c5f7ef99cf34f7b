"""Every rule runs in a conda env that exists, is pinned like pyproject.toml and covers what its script imports.

The rule files are read as text (no workflow is loaded), the scripts and the lungtrial modules they reach are
read with :mod:`ast` (every import, function-level ones included, plus the engines pandas loads behind
``read_parquet``/``to_parquet``/``read_excel``), and import names are mapped to distributions with the metadata of
the environment running the tests (where everything in pyproject.toml is installed). An env must pin each such
distribution itself: the Snakemake environment's packages that the script preamble puts behind the env's own
would otherwise hide the gap on a developer's machine.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
ENV_DIR = REPO / "envs"
FAMILIES = ("demo", "imaging", "clinical", "stats")
LIBRARY = REPO / "src" / "lungtrial"
# Importable in a rule's script whatever its env: Snakemake's script preamble puts Snakemake on sys.path.
PROVIDED = {"snakemake"}
ACTIONS = ("script", "shell", "run", "notebook", "wrapper")
# Packages that pandas loads behind a call, never named in an import: {call: module it loads}.
IMPLICIT = {"read_parquet": "pyarrow", "to_parquet": "pyarrow", "read_excel": "openpyxl"}

RULE_RE = re.compile(r"^(\s*)(?:rule|checkpoint)\s+(\w+)\s*:")
DIRECTIVE_RE = re.compile(r"^\s*(\w+)\s*:\s*(.*)$")


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_rules(path: Path) -> dict[str, dict[str, str]]:
    """Rules of a Snakefile or .smk file: {rule: {directive: its text}}; a directive's text is what follows
    its colon, or its indented block when the colon ends the line."""
    lines = path.read_text().splitlines()
    rules: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(lines):
        match = RULE_RE.match(lines[i])
        i += 1
        if not match:
            continue
        indent = len(match.group(1))
        directives: dict[str, str] = {}
        current = None
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            level = len(line) - len(line.lstrip())
            directive = DIRECTIVE_RE.match(line)
            if directive and (current is None or level <= current[1]):
                current = (directive.group(1), level)
                directives[current[0]] = directive.group(2).strip()
            elif current is not None:
                directives[current[0]] = (directives[current[0]] + "\n" + line.strip()).strip()
        rules[match.group(2)] = {"file": str(path), **directives}
    return rules


@cache
def all_rules() -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for path in RULE_FILES:
        for name, directives in parse_rules(path).items():
            assert name not in rules, f"rule {name} defined twice"
            rules[name] = directives
    return rules


def job_rules() -> dict[str, dict[str, str]]:
    """Rules that run something (script, shell, ...), i.e. all but pure target rules like `all`."""
    return {name: d for name, d in all_rules().items() if any(a in d for a in ACTIONS)}


def literal_path(rule: dict[str, str], directive: str) -> Path:
    """The file a rule's directive names (a string literal, relative to the rule's file)."""
    text = rule[directive]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pytest.fail(f"{rule['file']}: {directive}: must be a plain string literal, got {text!r}")
    return (Path(rule["file"]).parent / value).resolve()


def env_pins(path: Path) -> dict[str, str]:
    """{normalised distribution: version} of a conda env file's pip section (all pinned with ==)."""
    env = yaml.safe_load(path.read_text())
    pins: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                name, sep, version = req.partition("==")
                assert sep and version, f"{path.name}: pip requirement {req!r} is not pinned with =="
                pins[normalize(name)] = version
    return pins


@cache
def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for req in project["dependencies"]:
        name, _, version = req.partition("==")
        pins[normalize(name)] = version
    return pins


def module_file(module: str) -> Path | None:
    """Source file of a lungtrial module (package -> its __init__.py), None if there is none."""
    base = LIBRARY.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, module: str | None) -> dict[str, bool]:
    """Absolute names of every module imported anywhere in ``path`` (``module`` resolves relative imports),
    each mapped to whether it must be a module: in ``from a import b``, ``a.b`` may be a module or a name in ``a``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = None
    if module is not None:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.name, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert package is not None, f"{path}: relative import outside the library"
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names[target] = True
            for alias in node.names:
                if alias.name != "*":
                    names.setdefault(f"{target}.{alias.name}", False)
    names.pop("__future__", None)
    return names


def lazy_submodules(file: Path, module: str) -> list[tuple[Path, str]]:
    """Every submodule of a package whose ``__init__`` imports submodules by name at run time (a lazy
    ``__getattr__`` with ``import_module``): which one a script's ``from package import name`` loads cannot be
    read off the import, so all count."""
    if file.name != "__init__.py" or "import_module(" not in file.read_text():
        return []
    return [(sub, f"{module}.{sub.stem}") for sub in sorted(file.parent.glob("*.py")) if sub.name != "__init__.py"]


def third_party_imports(script: Path) -> dict[str, set[str]]:
    """{top-level third-party module: importers} for a script and the lungtrial modules it reaches."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo: list[tuple[Path, str | None]] = [(script, None)]
    while todo:
        path, module = todo.pop()
        importer = path.name if module is None else module
        for name, required in imports_of(path, module).items():
            top = name.partition(".")[0]
            if top == "lungtrial":
                parts = name.split(".")
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                for k in range(1, len(parts) + 1):
                    sub = ".".join(parts[:k])
                    file = module_file(sub)
                    if file is None:
                        assert not required or k < len(parts), f"{importer} imports {name}: no such module"
                    elif sub not in seen:
                        seen.add(sub)
                        todo.append((file, sub))
                        for lazy in lazy_submodules(file, sub):
                            if lazy[1] not in seen:
                                seen.add(lazy[1])
                                todo.append(lazy)
            elif top not in sys.stdlib_module_names and top not in PROVIDED:
                found.setdefault(top, set()).add(importer)
        text = path.read_text()
        for call, loaded in IMPLICIT.items():
            if f".{call}(" in text:
                found.setdefault(loaded, set()).add(f"{importer} ({call})")
    return found


@cache
def distributions_of(top_module: str) -> set[str]:
    return {normalize(d) for d in importlib.metadata.packages_distributions().get(top_module, [])}


@pytest.mark.parametrize("family", FAMILIES)
def test_env_family_exists_and_is_pinned_like_pyproject(family):
    path = ENV_DIR / f"{family}.yaml"
    assert path.is_file(), f"envs/{family}.yaml missing"
    env = yaml.safe_load(path.read_text())
    assert "python=3.11" in env["dependencies"], f"{path.name}: python=3.11 expected (pyproject requires-python)"
    pins = env_pins(path)
    assert pins, f"{path.name}: no pinned pip packages"
    for name, version in pins.items():
        assert name in pyproject_pins(), f"{path.name}: {name} is not a dependency in pyproject.toml"
        assert version == pyproject_pins()[name], (
            f"{path.name}: {name}=={version} but pyproject.toml pins {pyproject_pins()[name]}"
        )


def test_rule_files_found():
    assert job_rules(), "no rules parsed from the Snakefile and workflow/rules/*.smk"


@pytest.mark.parametrize("rule", sorted(job_rules()))
def test_rule_names_an_existing_env(rule):
    directives = job_rules()[rule]
    assert "conda" in directives, f"rule {rule} ({directives['file']}) has no conda: directive"
    env = literal_path(directives, "conda")
    assert env.parent == ENV_DIR.resolve(), f"rule {rule}: conda env {env} is not under envs/"
    assert env.is_file(), f"rule {rule}: conda env {env.name} does not exist"
    assert env.stem in FAMILIES, f"rule {rule}: env {env.name} is not one of the families {FAMILIES}"


@pytest.mark.parametrize("rule", sorted(job_rules()))
def test_rule_declares_threads_and_resources(rule):
    directives = job_rules()[rule]
    assert "threads" in directives, f"rule {rule} declares no threads"
    resources = directives.get("resources", "")
    for key in ("mem_mb", "runtime"):
        assert re.search(rf"\b{key}\s*=", resources), f"rule {rule} declares no {key} resource"


@pytest.mark.parametrize("rule", sorted(r for r, d in job_rules().items() if "script" in d))
def test_env_covers_script_imports(rule):
    directives = job_rules()[rule]
    script = literal_path(directives, "script")
    assert script.is_file(), f"rule {rule}: script {script} does not exist"
    env = literal_path(directives, "conda")
    pins = env_pins(env)
    missing = []
    for module, files in sorted(third_party_imports(script).items()):
        dists = distributions_of(module)
        if not dists:
            missing.append(f"{module} (no installed distribution provides it; imported by {sorted(files)})")
        elif not dists & pins.keys():
            missing.append(f"{'/'.join(sorted(dists))} for `import {module}` in {sorted(files)}")
    assert not missing, f"rule {rule}: envs/{env.name} lacks " + "; ".join(missing)


@pytest.mark.parametrize("profile", sorted((REPO / "profiles").glob("*/config.yaml")), ids=lambda p: p.parent.name)
def test_profile_names_existing_rules(profile):
    """A rule renamed in the workflow but not in a profile would silently fall out of its group."""
    settings = yaml.safe_load(profile.read_text())
    named = set(settings.get("groups", {})) | {r.partition(":")[0] for r in settings.get("set-resources", {})}
    unknown = sorted(named - set(job_rules()))
    assert not unknown, f"{profile.relative_to(REPO)} names unknown rules {unknown}"
    assert set(settings.get("group-components", {})) <= set(settings.get("groups", {}).values())


def test_import_scan_follows_library_modules(tmp_path):
    """The import scan reaches third-party imports through lungtrial modules, relative imports included."""
    script = tmp_path / "script.py"
    script.write_text(
        "import json\nfrom lungtrial.wfutil import setup_logging\nimport numpy as np\nimport pandas as pd\n"
        "pd.read_parquet('x.parquet')\n"
    )
    found = third_party_imports(script)
    assert set(found) == {"numpy", "pandas", "pyarrow"}
    assert distributions_of("numpy") == {"numpy"}
    assert distributions_of("skimage") == {"scikit-image"}


def test_import_scan_rejects_missing_library_module(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("from lungtrial.no_such_module import thing\n")
    with pytest.raises(AssertionError, match="no such module"):
        third_party_imports(script)
