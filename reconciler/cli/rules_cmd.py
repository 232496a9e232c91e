"""``mtv-gitops rules ...``: evaluate, test and version the validation rules of a repo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from reconciler.cli.render import console, err_console

EXIT_PROBLEMS = 1


def _provider_type(root: Path, value: str) -> str:
    """A provider type that has rules, or the name of a Provider in the repo."""
    from reconciler.manifests.config import load_config
    from reconciler.manifests.loader import load_repo
    from reconciler.validation.ruleset import rule_types

    types = rule_types()
    if value in types:
        return value
    config, _ = load_config(root)
    for (_, name), provider in load_repo(root, config).of("Provider").items():
        if value in (name, f"{provider.namespace}/{name}") and provider.spec.type in types:
            return provider.spec.type
    raise click.BadParameter(
        f"{value!r} is neither a provider type ({', '.join(types)}) nor the name of "
        "a source Provider in the repo",
        param_hint="--provider",
    )


def _tree(repo: str) -> Path:
    root = Path(repo)
    if not root.is_dir():
        raise click.BadParameter(f"{repo} is not a folder", param_hint="REPO")
    return root


provider_opt = click.option(
    "--provider",
    "-p",
    required=True,
    help="Provider type (any an installed source plugin has rules for: `mtv-gitops rules "
    "test` lists them) or the name of a Provider in REPO.",
)


@click.group("rules")
def rules() -> None:
    """Validation rules: the shipped defaults plus the repo's rules/<provider>/*.rego.

    Repo files join the default Rego package (rules of the same name are OR-ed, as in MTV); a
    repo file named like a default file replaces it. Rules written in Rego v0 as the MTV 2.4
    docs show them (`concerns[flag] { ... }`) are read as the partial set they mean.
    """


@rules.command("eval")
@click.argument("repo", metavar="REPO")
@provider_opt
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.File("r"),
    help="The VM document as JSON ('-' for stdin). A Forklift inventory answer "
    '{"input": {...}} is accepted as it is.',
)
def eval_cmd(repo: str, provider: str, input_file: Any) -> None:
    """Validate one VM document with REPO's rules; print {rules_version, errors, concerns}."""
    from reconciler.validation.engine import RegoEngine
    from reconciler.validation.ruleset import (
        compile_rules,
        engine_notes,
        load_rule_set,
        replaced_notes,
        rewrite_notes,
    )
    from reconciler.validation.service import diagnose, tidy

    root = _tree(repo)
    ptype = _provider_type(root, provider)
    try:
        doc = json.load(input_file)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{input_file.name}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}",
            param_hint="--input",
        ) from None
    if isinstance(doc, dict) and set(doc) == {"input"}:
        doc = doc["input"]
    rs = load_rule_set(ptype, root)
    with RegoEngine() as engine:
        built = None if rs.problems else compile_rules(engine, rs)
        if built is None or not built.ok:
            why = rs.problems or diagnose(rs, engine, tidy(built.error if built else ""))
            for line in why:
                err_console.print(f"error {line}", markup=False, style="red")
            sys.exit(EXIT_PROBLEMS)
        (res,) = list(engine.evaluate([json.dumps(doc)]))
    for note in replaced_notes(rs):
        err_console.print(f"note {note}", markup=False)
    for f in rs.custom_files:
        for note in engine_notes(f) + rewrite_notes(f):
            err_console.print(f"note {note}", markup=False)
    if not res.ok:
        err_console.print(f"error evaluating: {tidy(res.error)}", markup=False, style="red")
        sys.exit(EXIT_PROBLEMS)
    click.echo(json.dumps(res.result, indent=2, sort_keys=True))


@rules.command("test")
@click.argument("repo", metavar="REPO")
@click.option(
    "--provider", "-p", default=None, help="Only this provider type (default: all of them)."
)
@click.option(
    "--defaults", is_flag=True, help="Also run the shipped rules' own tests (against them alone)."
)
@click.option("-v", "--verbose", is_flag=True, help="List passing tests too.")
def test_cmd(repo: str, provider: str | None, defaults: bool, verbose: bool) -> None:
    """Run the rule tests: data cases (*_cases.yaml) and OPA-style test_* rules (*_test.rego).

    REPO's tests (rules/<provider>/) run against the rule set in force for REPO: the shipped
    defaults plus REPO's files. Exits 1 when a test fails.
    """
    from reconciler.validation.engine import RegoEngine
    from reconciler.validation.rule_tests import run_all
    from reconciler.validation.ruleset import load_rule_set, rule_types

    root = _tree(repo)
    types = [_provider_type(root, provider)] if provider else rule_types()
    failed = 0
    table = Table("provider", "where", "test", "result", title="rule tests", show_lines=False)
    summary = []
    with RegoEngine() as engine:
        for ptype in types:
            outcomes = run_all(load_rule_set(ptype, root), engine, root, defaults)
            bad = [o for o in outcomes if not o.passed]
            failed += len(bad)
            summary.append(f"{ptype}: {len(outcomes) - len(bad)} passed, {len(bad)} failed")
            for o in outcomes if verbose else bad:
                result = "[green]ok[/]" if o.passed else f"[red]FAIL[/] {escape(o.message)}"
                table.add_row(ptype, escape(o.where), escape(o.name), result)
    if table.row_count:
        console.print(table)
    for line in summary:
        console.print(line, markup=False)
    sys.exit(EXIT_PROBLEMS if failed else 0)


@rules.command("bump")
@click.argument("repo", metavar="REPO")
@provider_opt
def bump_cmd(repo: str, provider: str) -> None:
    """Raise the rules version in REPO's rules/<provider>/rules_version.rego (created from the
    shipped one when absent). Commit and push it: every VM of that type is validated again."""
    from reconciler.validation.bump import BumpError, bump

    root = _tree(repo)
    ptype = _provider_type(root, provider)
    try:
        done = bump(root, ptype)
    except BumpError as exc:
        err_console.print(f"error {exc}", markup=False, style="red")
        sys.exit(EXIT_PROBLEMS)
    how = "created" if done.created else "updated"
    rel = done.path.relative_to(root)
    console.print(f"{rel}: rules_version {done.old} -> {done.new} ({how})", markup=False)
