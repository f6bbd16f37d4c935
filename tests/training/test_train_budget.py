"""`--time-budget` bounds the whole run: training and the final evaluation (stzoo.training.train)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from test_train import TAU_CFG, mnist_dir  # noqa: F401 - the fixture

import stzoo.training.train as train_mod
from stzoo.training.distributed import Dist
from stzoo.training.train import EVAL_SAFETY, EVAL_SHARE, MIN_EVAL_SEQUENCES, Recipe, train


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    ("requested", "want_sequences"),
    [(100, 100), (10000, int(EVAL_SHARE * 100 // (0.01 * EVAL_SAFETY))), (5, 5)],
)
def test_the_final_evaluation_is_sized_from_the_measured_speed(monkeypatch, requested, want_sequences):
    """A simulated clock on which evaluating costs 0.01 s per sequence, and a 100 s budget: the whole
    evaluation is kept when it fits in its share of the budget, else as many sequences as do."""
    clock = {"t": 0.0}
    monkeypatch.setattr(train_mod, "_budget_clock_now", lambda _clock: clock["t"])
    monkeypatch.setattr(train_mod, "test_data", lambda _d, n, _o=None, cache=True: list(range(n)))

    def fake_eval(model, test, recipe, dev, dist_, progress):
        clock["t"] += 0.01 * len(test)
        return {"sequences": len(test)}

    monkeypatch.setattr(train_mod, "_evaluate_shared", fake_eval)
    plan = train_mod._plan_final_eval(
        model=torch.nn.Identity(),
        dataset="moving_mnist",
        dataset_options=None,
        recipe=Recipe(),
        dev=torch.device("cpu"),
        dist_=Dist(),
        eval_sequences=requested,
        time_budget_s=100.0,
        budget_clock="wall",
    )
    probe = min(requested, 8)
    assert plan["probe_sequences"] == probe and plan["probe_s"] == pytest.approx(0.01 * probe)
    assert plan["sequences"] == max(min(requested, MIN_EVAL_SEQUENCES), want_sequences)
    reserve = plan["sequences"] * 0.01 * EVAL_SAFETY
    assert plan["reserve_s"] == pytest.approx(reserve, abs=1e-4)
    assert plan["training_budget_s"] == pytest.approx(100 - reserve - 0.01 * probe, abs=1e-3)


def test_a_tiny_budget_bounds_training_and_evaluation(tmp_path, mnist_dir):  # noqa: F811
    """3 CPU-seconds of budget with the default 10,000 evaluation sequences: the call's CPU time ends within
    the budget plus a slack (stated below), having measured as many sequences as fitted. The CPU clock, so
    that a loaded machine (other test processes) does not change what is measured; wall time is only
    bounded loosely."""
    budget, slack = 3.0, 6.0  # slack: building the model and data, checkpoint writes, the annealed last step
    recipe = Recipe(lr=1e-3, epochs=1000, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    # start-up is outside the budget; its one-time part is the import of torch's compiler by the first
    # optimizer of the process (26 s on the loaded test machine), done here before the clock starts
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    t0, c0 = time.monotonic(), time.process_time()
    summary = train(
        "tau",
        TAU_CFG,
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        progress=False,
        time_budget_s=budget,
        budget_clock="cpu",
        dtype="float32",
        log_every=1,
    )
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    assert cpu <= budget + slack, (cpu, summary["budget"])  # an upper bound only, no speed claim
    assert wall <= budget + 120.0  # whatever else the machine runs meanwhile
    final = summary["budget"]["final_evaluation"]
    assert final["requested"] == 10000 and MIN_EVAL_SEQUENCES <= final["sequences"] < 10000
    assert summary["metrics"]["sequences"] == final["sequences"]
    assert summary["step"] < summary["total_steps"]  # stopped on the clock
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    longest_step = max(b["cpu_s"] - a["cpu_s"] for a, b in zip([{"cpu_s": 0.0}, *log], log))
    # the step that crosses the training budget is finished, and one more, annealed, is the last
    assert summary["cpu_s"] <= summary["budget"]["training_budget_s"] + 2 * longest_step + 1e-6
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["budget"] == summary["budget"] and on_disk["call_wall_s"] <= wall


def test_a_budget_for_training_only_measures_every_sequence_after_it(tmp_path, mnist_dir):  # noqa: F811
    """``budget_covers="training"`` (the compute-matched comparison's): the whole budget trains, then the
    final evaluation measures every sequence asked for."""
    recipe = Recipe(lr=1e-3, epochs=1000, epoch_size=4, batch_size=2, frames_in=4, frames_out=4, loss="mse")
    summary = train(
        "tau",
        TAU_CFG,
        tmp_path,
        dataset_options={"mnist_dir": mnist_dir},
        recipe=recipe,
        device="cpu",
        progress=False,
        time_budget_s=1.0,
        eval_sequences=40,
        dtype="float32",
        budget_covers="training",
    )
    assert "budget" not in summary and summary["metrics"]["sequences"] == 40
    assert summary["wall_clock_s"] >= 1.0  # trained until the whole budget was spent
    with pytest.raises(train_mod.ConfigError, match="budget_covers"):
        train("tau", TAU_CFG, tmp_path / "x", recipe=recipe, budget_covers="everything")
