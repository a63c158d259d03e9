"""The execution agents' limit orders in the simulated book (issue 16): the order-book invariants under random ladders
(conservation, never worse than the limit, filled only when the tape reaches the price and the queue ahead is gone,
nothing left resting), and the same guarantees seen from the dynamic env with the allocation action."""
import numpy as np
import pytest

from serl.core import DataConfig, EnvConfig, SerlError
from serl.market.synthetic import generate_synthetic
from serl.market.data import make_orders
from serl.market.agent_orders import MarketSim, check_limit_invariants
from serl.agent.envs import DynamicVecExecutionEnv, VecExecutionEnv, obs_names, BOOK_FEATURES

PANEL = generate_synthetic("synthetic-nasdaq100", 2, 8, seed=3)


@pytest.mark.parametrize("n_agents, seed", [(1, 0), (3, 1)])
def test_book_invariants_under_agent_limits(n_agents, seed):
    sim = MarketSim(PANEL, n_agents=n_agents, seed=seed); sim.reset([0, 5, 9], [30, 200, 370])
    n = check_limit_invariants(sim, 30, levels=4, seed=seed)
    assert n["orders_filled"] > 10 and n["lots_filled"] > 0


def test_env_allocation_conserves_and_leaves_nothing_resting():
    cfg = DataConfig("synthetic-nasdaq100", window_minutes=60)
    orders = make_orders(PANEL, cfg, 0)
    env = DynamicVecExecutionEnv(PANEL, orders, EnvConfig(step_minutes=10, action="allocation", book_obs=True), num_envs=8, seed=0)
    obs, _ = env.reset(idx=np.arange(8))
    assert obs.shape[1] == len(obs_names(env.cfg)) and set(BOOK_FEATURES) <= set(obs_names(env.cfg))
    g = np.random.default_rng(0); B = env.num_envs
    for t in range(env.n_steps):
        w = g.dirichlet(np.ones(env.act_dim), B); w[:, 0] *= 0.2                 # mostly passive
        obs, r, term, _, info = env.step(w)
        x = info["reward_inputs"]
        assert np.allclose(x["exec_qty"] + x["remaining"], x["quantity"])       # every share executed or still to do
        assert (x["passive_qty"] <= x["exec_qty"] + 1e-9).all() and (x["remaining"] >= -1e-9).all()
    assert term.all() and x["passive_qty"].sum() > 0
    assert all(len(env.sim.limit_orders(i)) == 0 for i in range(B))            # the last decision cancelled every ladder
    p = x["passive_value"] / np.where(x["passive_qty"] > 0, x["passive_qty"], 1)
    ok = x["passive_qty"] > 0
    assert (np.abs(p[ok] / x["arrival"][ok] - 1) < 0.05).all()


def test_allocation_action_checks():
    cfg = DataConfig("synthetic-nasdaq100", window_minutes=60)
    orders = make_orders(PANEL, cfg, 0)
    env = VecExecutionEnv(PANEL, orders, EnvConfig(step_minutes=10, action="allocation", limit_levels=2), num_envs=4)
    env.reset(idx=np.arange(4))
    assert env.act_dim == 4
    with pytest.raises(SerlError, match="shape"): env.step(np.ones(4))
    with pytest.raises(SerlError, match="NaN"): env.step(np.full((4, 4), np.nan))
    env.step(np.zeros((4, 4)))                                                    # all zero: hold
    assert (env.remaining == env.quantity).all()
    with pytest.raises(SerlError, match="action"): VecExecutionEnv(PANEL, orders, EnvConfig(action="limit"))


def test_gymnasium_checker_with_the_allocation_action():
    import warnings
    from gymnasium.utils.env_checker import check_env
    from serl.agent.envs import ExecutionEnv
    orders = make_orders(PANEL, DataConfig("synthetic-nasdaq100", window_minutes=60), 0)
    env = ExecutionEnv(PANEL, orders, EnvConfig(step_minutes=10, action="allocation", book_obs=True))
    assert env.action_space.shape == (6,) and env.observation_space.shape == (30,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
