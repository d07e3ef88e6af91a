"""One module per command of the `manifpt` CLI. Each defines NAME, HELP, add_parser(subparsers) and
run(args) -> exit code, plus LOCK_OUT (the command's --out folder is held for the run: cli.py takes it)
and RESUME (an interrupted run continues with --resume; or a function of args saying so)."""
from . import artifacts, bench, demo, evaluate, experiment, fit, predict, project, ssl_pretrain

COMMANDS = {m.NAME: m for m in (demo, bench, project, artifacts, fit, predict, evaluate, experiment, ssl_pretrain)}
