import json
import os
import subprocess
import sys

import pytest

import fastvar

from fastvar.cli import main


def test_simulate_prints_a_table(capsys):
    assert main(["simulate", "--width", "8", "--depth", "3", "--trials", "200",
                 "--engine", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "q_mean" in out and "g_mean" in out and out.count("\n") >= 6


def test_options_without_subcommand_run_simulate(capsys):
    assert main(["--widths", "5,7,3", "--trials", "100", "--engine", "numpy", "--no-gradients",
                 "--activation", "leaky_relu(0.2)", "--init", "2.0", "--bias-std", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "5,7,3" in out and "g_mean" not in out


def test_json_to_stdout_and_files(capsys, tmp_path):
    args = ["simulate", "--width", "4", "--depth", "2", "--trials", "100", "--engine", "numpy",
            "--seed", "3"]
    assert main(args + ["--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed"] == 3 and len(data["columns"]["q_mean"]) == 2
    assert main(args + ["--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["columns"] == data["columns"]
    assert (tmp_path / "r.csv").read_text().startswith("layer,width")


@pytest.mark.parametrize("args, message", [
    (["--width", "0"], "width must be between 1"),
    (["--depth", "-2"], "depth must be between 1"),
    (["--activation", "foo"], "unknown activation"),
    (["--init", "bad"], "unknown init"),
    (["--init", "nan"], "finite"),
    (["--distribution", "cauchy"], "unknown distribution"),
    (["--gain", "-1"], "gain must be > 0"),
    (["--bias-std", "inf"], "finite"),
    (["--trials", "0"], "trials must be between 1"),
    (["--engine", "gpu"], "unknown engine"),
    (["--threads", "0"], "threads must be between"),
    (["--widths", "4,4", "--width", "3"], "not both"),
    (["--trials", "10", "--inputs-per-network", "3"], "multiple"),
])
def test_bad_input_is_one_line_and_status_2(capsys, args, message):
    assert main(["simulate", "--trials", "10", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--widths", "4,x"])
    assert exc.value.code == 2
    assert "--widths" in capsys.readouterr().err


def test_info_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "fastvar", "info"], capture_output=True,
                         text=True, check=True).stdout
    assert "numba" in out and "numpy" in out and "engines:" in out


def test_bad_json_path_fails_cleanly(capsys, tmp_path):
    code = main(["simulate", "--width", "4", "--depth", "1", "--trials", "10", "--engine", "numpy",
                 "--json", str(tmp_path / "no" / "r.json")])
    assert code == 2 and "error" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--json", "/nonexistent-folder/r.json"], "does not exist"),
    (["--csv", "/nonexistent-folder/r.csv"], "does not exist"),
    (["--plot", "r.notanimage"], "name it .png"),
])
def test_unwritable_outputs_fail_before_the_run(capsys, args, message):
    # a huge run: it must be refused by the output check, not run first
    assert main(["simulate", "--width", "2000", "--depth", "50", "--trials", "1e8", *args]) == 2
    assert message in capsys.readouterr().err


def test_counts_accept_scientific_notation(capsys):
    assert main(["simulate", "--width", "4", "--depth", "1", "--trials", "1e2",
                 "--engine", "numpy"]) == 0
    assert "100 trials" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--engine", "gpu"], "unknown engine"),
    (["--seconds", "-1"], "--seconds must be between 0.01 and 600"),
    (["--seconds", "inf"], "--seconds must be between"),  # sized runs up to 2**40 trials
    (["--seconds", "nan"], "--seconds must be between"),
    (["--seconds", "1e-9"], "--seconds must be between"),  # timed a call's fixed cost
    (["--repeats", "0"], "--repeats must be between 1 and 1000"),
    (["--repeats", "100000000"], "--repeats must be between"),
    (["--threads", "0"], "threads must be between"),
])
def test_bench_rejects_bad_options_before_timing(capsys, args, message):
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_long_run_says_how_long_on_stderr(capsys, monkeypatch):
    from fastvar.cli import common as cli
    from fastvar.api import Estimate

    line = cli.announcement(Estimate("exact", 3.2 * 3600, 2, 0))
    assert line == ("fastvar: this run will take about 3.2 hours on engine exact (2 threads); "
                    "Ctrl-C stops it")
    assert cli.announcement(Estimate("exact", 59.0, 2, 0)) is None
    assert "about 101 seconds" in cli.announcement(Estimate("direct", 101.0, 1, 0))
    monkeypatch.setattr(cli, "ANNOUNCE_SECONDS", 0.0)  # every run is "long"
    assert main(["simulate", "--width", "8", "--depth", "2", "--trials", "10"]) == 0
    assert "this run will take about" in capsys.readouterr().err
    monkeypatch.setattr(cli, "ANNOUNCE_SECONDS", 60.0)
    assert main(["simulate", "--width", "8", "--depth", "2", "--trials", "10"]) == 0
    assert "this run will take" not in capsys.readouterr().err


def test_a_run_of_years_is_refused_by_the_cli(capsys):
    assert main(["--width", "256", "--depth", "20", "--trials", "1e13"]) == 2
    assert "years on engine exact" in capsys.readouterr().err


def test_bare_fastvar_answers_xavier_versus_he(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "q Xavier" in out and "q He" in out and "2/256" in out


def test_cli_defaults_are_the_python_defaults(capsys):
    from fastvar.network import Network

    assert main(["--width", "8", "--depth", "2", "--trials", "20", "--quiet"]) == 0
    default = Network([8, 8])
    assert f"{default.activation}, {default.init}" in capsys.readouterr().out


def test_columns_layers_and_inputs(tmp_path, capsys):
    import numpy as np

    data = np.random.default_rng(0).standard_normal((20, 8))
    np.save(tmp_path / "d.npy", data)
    np.savetxt(tmp_path / "d.csv", data, delimiter=",")
    assert main(["--width", "8", "--depth", "50", "--trials", "20", "--quiet", "--layers", "all",
                 "--columns", "q_mean,complete", "--inputs", str(tmp_path / "d.npy")]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "..." not in out and out.count("\n") >= 52
    assert main(["--width", "8", "--depth", "3", "--trials", "20", "--quiet",
                 "--inputs", str(tmp_path / "d.csv"), "--correlation", "rows"]) == 0
    assert "c_theory" in capsys.readouterr().out
    for bad in (["--columns", "nope"], ["--inputs", str(tmp_path / "x.txt")],
                ["--inputs", str(tmp_path / "missing.npy")]):
        assert main(["--width", "8", "--depth", "3", "--trials", "20", "--quiet"] + bad) == 2
    with pytest.raises(SystemExit) as stop:  # argparse's own one-line error
        main(["--width", "8", "--depth", "3", "--trials", "20", "--layers", "1"])
    assert stop.value.code == 2


def test_json_path_is_reported_on_stderr(tmp_path, capsys):
    target = tmp_path / "r.json"
    assert main(["--width", "8", "--depth", "2", "--trials", "20", "--quiet",
                 "--json", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().err and target.exists()


def test_a_stream_that_cannot_encode_plus_minus_gets_ascii():
    # PYTHONIOENCODING=ascii failed after the run on "±"
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    done = subprocess.run([sys.executable, "-m", "fastvar", "simulate", "--width", "8", "--depth",
                           "2", "--trials", "20"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "values +/- standard error" in done.stdout and "±" not in done.stdout
    assert "Traceback" not in done.stderr


def test_ctrl_c_in_the_theory_step_keeps_the_measurements(tmp_path, monkeypatch, capsys):
    # a Ctrl-C while the theory was computed (--width 1 --depth 300000) lost every trial
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fastvar.results.columns.mean_field_maps", interrupted)
    path = tmp_path / "r.json"
    status = main(["simulate", "--width", "4", "--depth", "3", "--trials", "40", "--engine",
                   "numpy", "--json", str(path)])
    captured = capsys.readouterr()
    assert status == 130 and "q_mean" in captured.out
    data = json.loads(path.read_text())
    assert data["columns"]["q_theory"] == [None] * 3 and all(data["columns"]["q_mean"])
    assert any("theory step was interrupted" in line for line in data["warnings"])


def test_norm_none_as_help_says_and_an_ascii_table_stays_aligned(capsys):
    assert main(["simulate", "--width", "8", "--depth", "2", "--trials", "40", "--norm",
                 "none"]) == 0
    capsys.readouterr()
    from fastvar import _text

    monkey = _text.PLUS_MINUS
    try:
        _text.use_ascii()
        res = fastvar.simulate(fastvar.mlp(8, 3), 200, seed=1)
        lines = res.table().splitlines()
    finally:
        _text.PLUS_MINUS = monkey
    header, first = lines[0], lines[1]
    assert "+/-" in first and len(header) == len(first)


# --- what happened is said on stderr (issue 21)

SMALL = ["--width", "8", "--depth", "2", "--engine", "numpy"]


def test_sweep_and_explain_say_which_files_they_wrote(tmp_path, capsys):
    target = tmp_path / "s.json"
    assert main(["sweep", "--grid", "init=1,2", "--trials", "20", "--json", str(target)]
                + SMALL) == 0
    assert f"fastvar: wrote {target}" in capsys.readouterr().err and target.exists()
    pytest.importorskip("matplotlib")
    picture = tmp_path / "e.png"
    assert main(["explain", "--width", "6", "--depth", "3", "--depth-width", "8", "--trials",
                 "20", "--plot", str(picture)]) == 0
    assert f"fastvar: wrote {picture}" in capsys.readouterr().err and picture.exists()


def test_a_resumed_checkpoint_says_what_it_loaded(tmp_path, capsys):
    folder = tmp_path / "ck"
    args = ["simulate", "--trials", "300", "--seed", "1", "--checkpoint", str(folder)] + SMALL
    assert main(args) == 0
    assert "resumed" not in capsys.readouterr().err
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "fastvar: resumed " in err and f" blocks from {folder}" in err, err
    args = ["sweep", "--grid", "init=1,2", "--trials", "20", "--checkpoint",
            str(tmp_path / "sw")] + SMALL
    assert main(args) == 0 and "resumed" not in capsys.readouterr().err
    assert main(args) == 0
    assert f"fastvar: resumed 2 of 2 configurations from {tmp_path / 'sw'}" in (
        capsys.readouterr().err)


def test_the_cli_announces_a_compile_off_a_terminal_unless_quiet(monkeypatch, capsys):
    import time

    from fastvar.engines import ENGINES

    # a compile that takes over a second; capsys' stderr is no terminal
    monkeypatch.setattr(ENGINES["numpy"], "prepare", lambda plan: time.sleep(1.3))
    monkeypatch.setattr(ENGINES["numpy"], "ready", lambda plan: False)
    assert main(["simulate", "--trials", "20"] + SMALL) == 0
    assert "fastvar: compiling the numpy engine's kernels" in capsys.readouterr().err
    assert main(["simulate", "--trials", "20", "--quiet"] + SMALL) == 0
    assert "compiling" not in capsys.readouterr().err
    fastvar.simulate(fastvar.mlp(8, 2), 400, engine="numpy")  # Python: as before, off a tty
    assert "compiling" not in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["exact", "direct", "numpy"])
def test_compiled_kernels_cost_no_timer_thread_a_call(monkeypatch, engine):
    # the compile announcement's timer thread cost 0.3-1 ms a call: the command line's
    # small calls ran 1.5-3x slower than the same calls from Python
    import threading

    from fastvar import api

    args = ["simulate", "--trials", "20", "--width", "8", "--depth", "2", "--engine", engine]
    assert main(args) == 0  # compiled (or loaded from the cache) now
    started = []
    monkeypatch.setattr(api.threading, "Timer",
                        lambda *a, **k: started.append(a) or threading.Timer(*a, **k))
    assert main(args) == 0
    assert started == []


def test_inputs_file_gives_the_input_width(tmp_path, capsys):
    # without --input-width the run failed: "inputs must have shape (8,) or (rows, 8) ..."
    data = tmp_path / "x.csv"
    data.write_text("\n".join(",".join(str(0.1 * (i + j)) for j in range(5)) for i in range(6)))
    assert main(["simulate", "--inputs", str(data), "--trials", "60"] + SMALL) == 0
    assert "widths 5->8x2" in capsys.readouterr().out
    assert main(["sweep", "--grid", "init=1,2", "--inputs", str(data), "--trials", "60"]
                + SMALL) == 0
    assert "input_width=5" in capsys.readouterr().out
    # a width given still wins, and a mismatch is the error it was
    assert main(["simulate", "--inputs", str(data), "--input-width", "4", "--trials", "60"]
                + SMALL) == 2
    assert "match the input width 4" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    [], ["--help"], ["simulate", "--help"], ["sweep", "--help"], ["explain", "--help"],
    ["info", "--help"], ["bench", "--help"], ["serve", "--help"], ["info"],
    ["explain", "--trials", "50"],
    ["simulate", "--trials", "200", "--correlation", "0.5", "--histograms"],
    # a narrow tanh network under He: heavy tails, their warnings, and the note under the table
    ["simulate", "--trials", "2000", "--width", "4", "--depth", "10", "--activation", "tanh",
     "--init", "he", "--residual", "1/sqrt(L)", "--bias-std", "0.1"],
    # finite-width theory columns of a residual network with a norm: 106-115 columns, and
    # the same NaN reason once per column
    ["simulate", "--trials", "200", "--width", "32", "--depth", "6", "--activation", "tanh",
     "--residual", "1/sqrt(L)", "--norm", "layer", "--correlation", "0.5", "--columns",
     "q_mean,q_theory,q_mean_theory,z_kurt,z_kurt_theory,q_var,q_var_theory,g_mean,g_theory,"
     "g_var,g_var_theory,c_mean,c_theory"],
    # four grid keys: the header ran to 104 columns
    ["sweep", "--grid", "init=1,2", "--grid", "bias_std=0,0.3", "--grid", "width=8,16", "--grid",
     "activation=tanh,relu", "--trials", "20", "--depth", "3", "--correlation", "0.5"],
    ["sweep", "--grid", "init=1,2", "--grid", "bias_std=0,0.3", "--trials", "40", "--width", "8",
     "--depth", "4", "--activation", "tanh", "--correlation", "0.5"],
    # a review counted 101-103 for these: bytes ("±" is two in UTF-8), not columns (one each)
    ["simulate", "--widths", "784,256,10", "--trials", "200"],
    ["simulate", "--widths", "784,256,256,10", "--activation", "leaky_relu(0.2)", "--trials",
     "200"],
    ["simulate", "--correlation", "0.5", "--depth", "4", "--activation", "gelu", "--trials",
     "400"],
    ["simulate", "--init", "1e100", "--depth", "3", "--trials", "200"],
])
def test_what_a_newcomer_runs_fits_100_columns(args, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps its help to the terminal's width
    try:
        main(args)
    except SystemExit as stop:  # --help
        assert stop.code == 0
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert len(lines) > 3
    too_long = [line for line in lines if len(line) > 100]
    assert not too_long, too_long
    text = " ".join(lines)
    assert text.count("no finite-width theory for residual streams or norms") <= 1, text


def test_counts_are_read_exactly_and_in_ascii_digits_only(capsys):
    from fastvar.options import count, widths_value

    # the reported case: 1234567890123456789e0 ran with ...768 (through a float64)
    assert count("1234567890123456789e0") == 1234567890123456789
    assert count("9007199254740993e0") == 9007199254740993 and count("2.5e1") == 25
    for text in ("1.5", "1e-3", "inf", "nan", "1e99999999"):
        with pytest.raises(ValueError, match="whole numbers"):
            count(text)
    for text in ("٨", "１２"):  # Arabic-Indic eight, fullwidth twelve
        with pytest.raises(ValueError, match="ASCII"):
            count(text)
        with pytest.raises(ValueError, match="ASCII"):
            widths_value(f"4,{text}")
    assert main(["simulate", "--width", "4", "--depth", "1", "--trials", "8", "--engine",
                 "numpy", "--seed", "1234567890123456789e0", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 1234567890123456789
    with pytest.raises(SystemExit):
        main(["simulate", "--width", "٨", "--depth", "1", "--trials", "8"])
    assert "ASCII" in capsys.readouterr().err


def test_a_sweep_interrupted_after_one_configuration_says_so_in_the_singular(monkeypatch,
                                                                              capsys):
    from fastvar import sweeps

    calls = []

    def interrupted(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return fastvar.simulate(*args, **kwargs)

    monkeypatch.setattr(sweeps, "simulate", interrupted)
    assert main(["sweep", "--grid", "init=1,2", "--trials", "20", "--width", "4", "--depth",
                 "2", "--engine", "numpy"]) == 130
    err = capsys.readouterr().err
    assert "interrupted after 1 configuration\n" in err, err
    assert "fastvar: interrupted" not in err  # one line says it


def test_more_table_rows_than_layers_are_refused_before_the_run(capsys):
    # the reported case: --layers 99 on a 3-layer network was accepted silently
    assert main(["simulate", "--width", "4", "--depth", "3", "--trials", "8", "--layers",
                 "99"]) == 2
    err = capsys.readouterr().err
    assert "--layers 99: the network has only 3 layers; give at most 3, or all" in err, err
    assert main(["simulate", "--width", "4", "--depth", "3", "--trials", "8", "--engine",
                 "numpy", "--layers", "3"]) == 0


def test_a_damaged_npy_file_is_called_so_without_pickle_advice(tmp_path, capsys):
    import numpy as np

    # the reported case: numpy's hint to load it with allow_pickle, unsafe for a damaged file
    (tmp_path / "garbage.npy").write_bytes(bytes(range(256)) * 2)
    np.save(tmp_path / "objects.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    for name, said in (("garbage", "not a valid .npy array file"),
                       ("objects", "holds Python objects, not numbers")):
        assert main(["--width", "8", "--depth", "2", "--trials", "10", "--inputs",
                     str(tmp_path / f"{name}.npy")]) == 2
        err = capsys.readouterr().err
        assert said in err and "pickle" not in err, err


def test_a_huge_number_is_shown_short_in_its_error(capsys):
    # the error line printed all 401 digits of 1e400
    assert main(["simulate", "--seed", "1e400"]) == 2
    err = capsys.readouterr().err
    assert "got 1.000e+400" in err and len(err) < 120
