"""The `qkdctl` command line (typer + rich).

Exit codes: 0 ok, 2 bad input, 3 instrument/transport failure, 4 security abort.
Errors print one line (no traceback unless --debug).
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from qkdctl.core.errors import InstrumentError, QkdInputError, SecurityAbort

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    """qkdctl: run, tune and benchmark decoy-state BB84 QKD benches."""
    _state["debug"] = debug


def fail(exc: BaseException) -> None:
    """Report an error on one line and exit with its code."""
    if _state["debug"]:
        raise exc
    code = 1
    if isinstance(exc, QkdInputError):
        code = 2
    elif isinstance(exc, InstrumentError):
        code = 3
    elif isinstance(exc, SecurityAbort):
        code = 4
    err_console.print(
        f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


def guarded(fn):
    """Run fn(); map qkdctl errors and missing files to one-line errors with exit codes."""
    try:
        return fn()
    except (QkdInputError, InstrumentError, SecurityAbort) as exc:
        fail(exc)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(QkdInputError(str(exc)))


@app.command()
def bench(
    name: str = typer.Argument(..., help="Benchmark name, or 'all'."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes only."),
) -> None:
    """Run a benchmark against its baseline measured in the same run."""
    import benchmarks

    names = benchmarks.available()
    if name != "all" and name not in names:
        fail(QkdInputError(f"unknown benchmark {name!r}; available: all, {', '.join(names)}"))
    results: list[dict] = []
    for n in names if name == "all" else [name]:
        results.extend(benchmarks.run(n, quick=quick))
    if as_json:
        print(json.dumps({"results": results}))
        return
    from rich.table import Table

    table = Table("name", "size", "rate", "unit", "baseline", "speedup")
    for r in results:
        table.add_row(
            str(r["name"]), f"{r['size']:.3g}", f"{r['rate']:.4g}", str(r["unit"]),
            f"{r['baseline_name']} {r['baseline_rate']:.4g}", f"{r['speedup']:.1f}x",
        )
    Console().print(table)


@app.command()
def keyrate(
    config: str = typer.Argument(..., help="Lab config TOML with [link] and [protocol]."),
    distance_km: Optional[float] = typer.Option(
        None, "--distance-km", help="Fiber length, km (default: [link].distance_km)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    optimize: bool = typer.Option(False, "--optimize", help="Maximise the finite-key rate over mu and p."),
    sweep: bool = typer.Option(False, "--sweep", help="Rate against distance and the maximum distance."),
    step_km: float = typer.Option(10.0, "--step-km", help="Sweep step, km."),
) -> None:
    """Asymptotic and finite-key (Lim et al. 2014) secret key rates of a link."""
    from qkdctl import planner
    from qkdctl.config import load_config

    def work() -> dict:
        cfg = load_config(config)
        if distance_km is not None and not distance_km >= 0.0:
            raise QkdInputError(f"--distance-km = {distance_km} must be >= 0")
        if not step_km > 0.0:
            raise QkdInputError(f"--step-km = {step_km} must be > 0")
        return planner.keyrate_summary(cfg, distance_km, optimize, sweep, step_km)

    out = guarded(work)
    if as_json:
        print(json.dumps(out))
        return
    from rich.table import Table

    console = Console()
    rows = out["sweep"] if sweep else [out]
    table = Table("distance km", "finite bits/pulse", "asymptotic bits/pulse", "key bits/block", "QBER")
    for r in rows:
        table.add_row(
            f"{r['distance_km']:.1f}", f"{r['finite_bits_per_pulse']:.3e}",
            f"{r['asymptotic_bits_per_pulse']:.3e}", str(r["finite_key_bits"]), f"{r['qber_key']:.4f}",
        )
    console.print(table)
    console.print(f"block size (key-basis detections): {out['block_size']:.0f}")
    if sweep:
        console.print(f"maximum distance with finite key: {out['max_distance_km']:.1f} km")
    for flag in out.get("flags", []):
        console.print(f"flag: {flag}", highlight=False)


def _block_line(rep) -> str:
    qz = "   -  " if rep.qber_z != rep.qber_z else f"{100 * rep.qber_z:5.2f}%"
    qx = "   -  " if rep.qber_x != rep.qber_x else f"{100 * rep.qber_x:5.2f}%"
    tail = f"key {rep.key_bits:7d} b" if rep.status == "ok" else f"ABORT {rep.abort_reason}"
    tuned = f"  tuned: {rep.tuner.get('name')}" if rep.tuner else ""
    return (f"block {rep.block_id:4d}  QBER Z {qz} X {qx}  sifted {rep.sifted_bits_z:7d}  "
            f"{rep.method or '-':16s} f {rep.ec_efficiency:5.3f}  {tail}{tuned}")


@app.command()
def run(
    config: str = typer.Argument(..., help="Lab config TOML (lab_configs/sim_bench.toml is the simulated bench)."),
    blocks: Optional[int] = typer.Option(None, "--blocks", min=1, help="Number of key blocks."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0.0, help="Wall-clock run time (s)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output directory (default runs/<time>)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the run's public randomness (recorded)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as one JSON object, last line."),
    quiet: bool = typer.Option(False, "--quiet", help="No per-block lines."),
    role: Optional[str] = typer.Option(None, "--role", help="alice|bob: one side as its own process (docs/engine.md)."),
    peer: Optional[str] = typer.Option(None, "--peer", help="HOST:PORT Alice listens on and Bob connects to."),
    auth_key_file: Optional[str] = typer.Option(
        None, "--auth-key-file", help="Pre-shared authentication key of the channel (hex or raw, >= 32 bytes)."),
) -> None:
    """Drive the bench of CONFIG block after block: key, reports and run database in --out."""
    import time as _time
    from pathlib import Path

    from qkdctl.config import load_config
    from qkdctl.runner import run_bench

    console = Console(stderr=as_json, soft_wrap=True)

    def go():
        cfg = load_config(config)
        cfg.require_bench()
        text = Path(config).read_text()
        out_dir = Path(out) if out else Path("runs") / _time.strftime("%Y%m%d-%H%M%S")
        n_blocks = blocks if blocks is not None else (cfg.engine.blocks if seconds is None else None)
        on_block = None if quiet else (lambda rep: console.print(_block_line(rep), highlight=False, markup=False))
        if role is not None or peer is not None or auth_key_file is not None:
            from qkdctl.roles import run_role

            return run_role(role, peer, auth_key_file, cfg, text, out_dir, blocks=n_blocks, seconds=seconds,
                            seed=seed, on_block=on_block)
        return run_bench(cfg, text, out_dir, blocks=n_blocks, seconds=seconds, seed=seed, on_block=on_block)

    summary = guarded(go)
    info = summary.as_dict()
    if as_json:
        print(json.dumps(info))
    else:
        rate = info["secret_rate_bps"]
        console.print(
            f"run {info['run_id']}: {info['status']}, {info['blocks']} blocks ({info['blocks_aborted']} aborted), "
            f"{info['secret_bits']} secret bits, {rate:.0f} bit/s of bench time, mean QBER "
            f"{(info['mean_qber'] or float('nan')) * 100:.2f} %  ->  {info['out_dir']}",
            highlight=False, markup=False, soft_wrap=True)
    if summary.status == "aborted":
        err_console.print(f"run aborted: {summary.abort_reason}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(4)


sim_app = typer.Typer(no_args_is_help=True, help="The simulated bench's emulated instruments.")
app.add_typer(sim_app, name="sim")


def _sim_config(path: str):
    """The simulated bench of a lab config, as `qkdctl run` would embed it, and a note."""
    from qkdctl.config import load_config
    from qkdctl.wiring import sim_config_of

    cfg = load_config(path)
    note = f"{path} [sim] with its [timing], [channels] and source calibration"
    return sim_config_of(cfg), note if cfg.sim else note + " (no [sim] table: simulator defaults otherwise)"


@sim_app.command("serve")
def sim_serve(
    config: str = typer.Argument(..., help="Lab config TOML; its [sim] table sets the simulator."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated bench."),
    as_json: bool = typer.Option(False, "--json", help="Print the resources as one JSON object."),
) -> None:
    """Start the emulated instruments, print their resource strings, serve until Ctrl-C/SIGTERM."""
    from firmware_sim.serve import SimServer, run_until_signal

    def announce(resources) -> None:
        if as_json:
            print(json.dumps(resources.as_dict()), flush=True)
        else:
            for name, where in resources.as_dict().items():
                print(f"{name:8s} {where}", flush=True)

    def serve() -> None:
        sim_config, note = _sim_config(config)
        err_console.print(f"sim: {note}; seed {seed}; Ctrl-C stops", highlight=False, markup=False, soft_wrap=True)
        run_until_signal(SimServer.from_config(sim_config, seed), announce)

    guarded(serve)


# --- record / replay / report / keys (qkdctl.replay_bench, qkdctl.report, qkdctl.store) ---


@app.command()
def record(
    config: str = typer.Argument(..., help="Lab config TOML with [instruments]."),
    seconds: float = typer.Option(..., "--seconds", help="Acquisition time to record, s."),
    out: str = typer.Option(..., "--out", help="HDF5 file to write (.h5)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the embedded simulated bench."),
) -> None:
    """Record tags and Alice's record of a bench into an HDF5 file (blocks of [engine].block_seconds)."""
    from pathlib import Path

    from qkdctl.config import load_config
    from qkdctl.replay_bench import record_bench

    def work() -> int:
        if not seconds > 0:
            raise QkdInputError(f"--seconds = {seconds} must be > 0")
        cfg = load_config(config)
        return record_bench(cfg, Path(config).read_text(), seconds, out, seed=seed)

    n = guarded(work)
    err_console.print(f"recorded {n} blocks to {out}", highlight=False, markup=False)


@app.command()
def replay(
    file: str = typer.Argument(..., help="HDF5 recording made by `qkdctl record`, or a T2 PTU file."),
    config: Optional[str] = typer.Option(None, "--config", help="Lab config (default: the recorded one)."),
    alice: Optional[str] = typer.Option(None, "--alice", help="Alice's record (.npz/.h5) for a PTU file."),
    out: Optional[str] = typer.Option(None, "--out", help="Output directory (default: FILE without suffix + '.replay')."),
    blocks: Optional[int] = typer.Option(None, "--blocks", help="Replay only the first N blocks."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the post-processing choices."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as one JSON object."),
) -> None:
    """Run the live pipeline and engine over a recording (HDF5, or PTU with --alice and --config)."""
    from pathlib import Path

    from qkdctl.config import load_config
    from qkdctl.replay_bench import replay_run

    out_dir = out if out is not None else str(Path(file).with_suffix("")) + ".replay"

    def work():
        cfg = load_config(config) if config is not None else None
        return replay_run(file, out_dir, cfg, seed=seed, blocks=blocks, alice_path=alice)

    summary = guarded(work).as_dict()
    if as_json:
        print(json.dumps(summary))
    else:
        mean_qber = summary["mean_qber"]
        Console().print(
            f"{summary['blocks']} blocks ({summary['blocks_aborted']} aborted), "
            f"{summary['secret_bits']} secret bits, mean QBER_Z "
            f"{'n/a' if mean_qber is None else f'{mean_qber:.4f}'}, run {summary['run_id']} in {out_dir}",
            highlight=False,
        )
    if summary["status"] == "aborted":
        fail(SecurityAbort(f"run aborted: {summary['abort_reason']}"))


@app.command()
def report(
    run_dir: str = typer.Argument(..., help="Output directory of a run (holds run.sqlite)."),
    out: Optional[str] = typer.Option(None, "--out", help="HTML file (default: RUN_DIR/report.html)."),
    run_id: Optional[str] = typer.Option(None, "--run", help="Run id (default: the latest run)."),
) -> None:
    """Write the HTML run report (QBER, rates, parameters, tuners, reconciliation, detectors, alarms)."""
    from qkdctl.report.html import write_report

    print(guarded(lambda: write_report(run_dir, out, run_id)))


keys_app = typer.Typer(no_args_is_help=True, help="Secret keys of a run: list, export (never printed).")
app.add_typer(keys_app, name="keys")


@keys_app.command("list")
def keys_list(
    run_dir: str = typer.Argument(..., help="Output directory of a run."),
    side: str = typer.Option("alice", "--side", help="Whose key store: alice or bob."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List key ids, lengths, states and blocks (no key bits)."""
    from dataclasses import asdict

    from qkdctl.store.export import list_keys

    keys = guarded(lambda: list_keys(run_dir, side))
    if as_json:
        print(json.dumps({"side": side, "keys": [asdict(k) for k in keys]}))
        return
    from rich.table import Column, Table

    table = Table("bits", "state", "run", "block")
    table.columns.insert(0, Column("key id", no_wrap=True, min_width=36))
    for k in keys:
        table.add_row(k.key_id, str(k.n_bits), k.state, k.run_id or "-", "-" if k.block_id is None else str(k.block_id))
    Console().print(table)
    available = sum(k.n_bits for k in keys if k.state == "available")
    Console().print(f"{len(keys)} keys, {available} bits available ({side})", highlight=False)


@keys_app.command("export")
def keys_export(
    run_dir: str = typer.Argument(..., help="Output directory of a run."),
    to: str = typer.Option(..., "--to", help="File to create (0600; never overwritten)."),
    ids: Optional[list[str]] = typer.Option(None, "--ids", help="Key ids (comma-separated or repeated)."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Number of bits (oldest whole keys are consumed)."),
    side: str = typer.Option("alice", "--side", help="Whose key store: alice or bob."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write keys to a file (packed bits, MSB first) and mark them used; key bits are never printed."""
    from qkdctl.store.export import export_keys

    names = None if ids is None else [k for arg in ids for k in arg.split(",") if k]
    res = guarded(lambda: export_keys(run_dir, to, ids=names, n_bits=bits, side=side))
    if as_json:
        print(json.dumps({"key_ids": res.key_ids, "bits": res.n_bits, "path": res.path}))
    else:
        Console().print(f"exported {res.n_bits} bits from {len(res.key_ids)} key(s) {', '.join(res.key_ids)} "
                        f"to {res.path}", highlight=False, soft_wrap=True)


from qkdctl.qml.cli import qml_app  # noqa: E402  (sub-app of `qkdctl qml`)

app.add_typer(qml_app, name="qml")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
