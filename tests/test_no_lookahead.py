"""No observation sees the future (issue 13). Perturb every bar from a moment t on (prices and volumes of the rest of that
day and of every later day, `serl.market.data.perturb_future`): everything decided or observed up to t must be identical.
Four paths: the parent orders (`make_orders`, `order_sets`), the static env, the dynamic env and the multi-agent env
(observations, fills, rewards and info up to decision t); the two envs also with limit orders and the book features
(issue 16: `action="allocation"`, `book_obs=True`). Each check also asserts that something after t did change, so
the perturbation bites. Plus the two leaks this probe found, as regressions: an instrument's first-day order sized on its
own day's volume, and the simulator normalised by whole-day statistics (its unit, grid and activity)."""
from dataclasses import replace

import numpy as np
import pytest

from serl.core import DataConfig, EnvConfig, SerlError
from serl.market.bars import panel_from_bars, panel_to_bars
from serl.market.synthetic import generate_synthetic
from serl.market.data import Orders, make_orders, order_sets, perturb_future
from serl.market.sim import MarketSim
from serl.agent.envs import VecExecutionEnv, DynamicVecExecutionEnv, MultiAgentExecutionEnv, group_orders

PANEL = generate_synthetic("synthetic-nasdaq100", 3, 4, seed=1)      # 3 stocks x 4 days of 390 bars
DATES = np.unique(PANEL.date)
DATA = DataConfig("synthetic-nasdaq100", window_minutes=60, orders_per_day=2)
ENV = EnvConfig(step_minutes=10, lookback=5)
LIMITS = replace(ENV, action="allocation", book_obs=True)           # limit orders in the book, book features observed
K = ENV.step_minutes


def same(a, b) -> bool:
    "Exact equality of nested dicts / lists / tuples of arrays and numbers (NaN equals NaN)."
    if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def known_orders(panel, o, date, t):
    "Orders decided at or before moment (date, t): earlier days, and that day's windows starting at or before t."
    d = panel.date[o.row]
    return (d < date) | ((d == date) & (o.start <= t))


# -- parent orders -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("day, t", [(0, 120), (1, 300), (2, 45)])
def test_orders_ignore_the_future(day, t):
    date = DATES[day]
    fut = perturb_future(PANEL, date, t, seed=t)
    a, b = make_orders(PANEL, DATA, 5), make_orders(fut, DATA, 5)
    known = known_orders(PANEL, a, date, t)
    assert known.any() and a.length == b.length and np.array_equal(a.row, b.row)
    for f in ("side", "quantity", "start"): assert np.array_equal(getattr(a, f)[known], getattr(b, f)[known]), f
    later = PANEL.date[a.row] > date                       # their references include the changed day: they move
    assert not np.array_equal(a.quantity[later], b.quantity[later])
    cfg = replace(DATA, window_options=(60, 120, 240))
    for sa, sb in zip(order_sets(PANEL, cfg, 5, both_sides=True), order_sets(fut, cfg, 5, both_sides=True), strict=True):
        known = known_orders(PANEL, sa, date, t)
        assert sa.length == sb.length and np.array_equal(sa.row, sb.row)
        for f in ("side", "quantity", "start", "id"): assert np.array_equal(getattr(sa, f)[known], getattr(sb, f)[known]), f


def test_first_day_without_a_past_gets_no_order():
    "Regression (leak 1): a first day was sized on its own full-day volume. Without a prior (real data) it gets no order."
    real = panel_from_bars(panel_to_bars(PANEL), "real")   # the same bars through the real-data path: no prior
    first = np.flatnonzero(real.date == DATES[0])
    assert np.isnan(real.ref_volume[first]).all() and np.isfinite(np.delete(real.ref_volume, first)).all()
    o = make_orders(real, DATA, 0)
    assert not np.isin(o.row, first).any() and len(o) == DATA.orders_per_day * (len(real) - len(first))
    with pytest.raises(SerlError, match="first day"): make_orders(real.subset(first), DATA, 0)
    # the synthetic generator's prior: known before the first day, the same whatever that day's bars are
    assert np.array_equal(PANEL.ref_volume[first], perturb_future(PANEL, DATES[0], 0).ref_volume[first])


# -- the simulator -----------------------------------------------------------------------------------------------------
def test_simulator_minutes_ignore_later_bars():
    "Regression (leak 2): the unit, grid and activity came from the whole day, so later volumes moved earlier minutes."
    rows = np.flatnonzero(PANEL.date == DATES[1])
    def run(panel):
        sim = MarketSim(panel, n_agents=1, seed=4); sim.reset(rows, np.full(len(rows), 10))
        at_start = [sim.unit, sim.tick, sim.mid]                              # after the warm-up, at bar 10
        return [at_start] + [sim.step_minute(np.full((len(rows), 1), 200.0), np.ones((len(rows), 1))) for _ in range(40)]
    a, b = run(PANEL), run(perturb_future(PANEL, DATES[1], 40, seed=1))
    assert same(a[:31], b[:31])                            # the unit, tick, warm-up and minutes 10..39
    assert not same(a[31:], b[31:])                        # minute 40 on follows the changed bars


# -- the environments --------------------------------------------------------------------------------------------------
def window_orders(panel, date, start, n_agents=1):
    "The parent orders of `date` (one group of `n_agents` per stock-day), every window starting at bar `start`."
    o = group_orders(panel, DATA, n_agents, seed=2)
    m = panel.date[o.row] == date
    return Orders(o.row[m], o.side[m], o.quantity[m], np.full(m.sum(), start), o.length)


def vec_rollout(env_cls, panel, date, start, cfg=ENV):
    "Reset (decision 0) and every step of fixed actions: [obs_0, (obs_1, reward, terminated, info), ...]."
    orders = window_orders(panel, date, start)
    env = env_cls(panel, orders, cfg, num_envs=len(orders), seed=0)
    obs, _ = env.reset(idx=np.arange(len(orders)))
    g = np.random.default_rng(0)
    acts = (g.uniform(0.2, 1.0, (env.n_steps, len(orders))) if env.act_dim == 1 else    # rates, or allocation weights
            g.dirichlet(np.ones(env.act_dim), (env.n_steps, len(orders))))
    seen = [obs]
    for t in range(env.n_steps):
        obs, r, term, _, info = env.step(acts[t])
        seen.append((obs, r, term, info["reward_inputs"]))
    return seen


def ma_rollout(panel, date, start, n_agents=2):
    "The multi-agent env, every group of `date`: per group [obs_0, (obs_1, rewards, terminations, infos), ...]."
    orders = window_orders(panel, date, start, n_agents)
    env = MultiAgentExecutionEnv(panel, orders, n_agents=n_agents, cfg=ENV, seed=0)
    acts = np.random.default_rng(0).uniform(0.2, 1.0, (env.vec.n_steps, n_agents))
    out = []
    for g in range(env.n_groups):
        obs, _ = env.reset(options={"group": g})
        seen = [obs]
        for t in range(env.vec.n_steps):
            obs, r, term, _, info = env.step({a: acts[t, i] for i, a in enumerate(env.possible_agents)})
            seen.append((obs, r, term, info))
        out.append(seen)
    return [list(x) for x in zip(*out)]                    # per decision, all groups


CASES = [(0, 0, 0), (1, 0, 2), (2, 57, 3)]                # (day, window start, decision d): the moment is start + d*K


@pytest.mark.parametrize("day, start, d", CASES)
@pytest.mark.parametrize("path", ["static", "dynamic", "multi-agent", "static-limits", "dynamic-limits"])
def test_envs_ignore_the_future(path, day, start, d):
    date, t = DATES[day], start + d * K
    fut = perturb_future(PANEL, date, t, seed=day + 1)
    run = {"static": lambda p: vec_rollout(VecExecutionEnv, p, date, start),
           "dynamic": lambda p: vec_rollout(DynamicVecExecutionEnv, p, date, start),
           "multi-agent": lambda p: ma_rollout(p, date, start),
           "static-limits": lambda p: vec_rollout(VecExecutionEnv, p, date, start, LIMITS),
           "dynamic-limits": lambda p: vec_rollout(DynamicVecExecutionEnv, p, date, start, LIMITS)}[path]
    a, b = run(PANEL), run(fut)
    assert same(a[:d + 1], b[:d + 1])                      # up to decision d: observations, fills, rewards, info
    assert not same(a[d + 1:], b[d + 1:])                  # after it: the changed bars show
