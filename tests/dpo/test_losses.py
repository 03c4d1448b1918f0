"""Each preference loss against values worked out by hand (see the arithmetic in the comments)."""

import pytest
import torch

from zephyr.dpo import losses
from zephyr.dpo.losses import LossConfig
from zephyr.dpo.losses import PairLogps
from zephyr.errors import ConfigError


def pair():
    # policy chosen -10, rejected -14; reference chosen -11, rejected -12; 4 and 5 completion tokens
    # delta = (-10 + 11) - (-14 + 12) = 1 + 2 = 3
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return PairLogps(t(-10.0), t(-14.0), t(-11.0), t(-12.0), t(4.0), t(5.0))


def test_delta():
    assert pair().delta().item() == pytest.approx(3.0)


def test_sigmoid_dpo():
    # beta*delta = 0.3; -log sigmoid(0.3) = log(1 + e^-0.3) = log(1.7408182) = 0.5543552
    assert losses.sigmoid(pair(), beta=0.1).item() == pytest.approx(0.5543552, abs=1e-6)


def test_sigmoid_conservative_label_smoothing():
    # 0.9 * 0.5543552 + 0.1 * log(1 + e^0.3) = 0.4989197 + 0.1 * 0.8543552 = 0.5843552
    assert losses.sigmoid(pair(), beta=0.1, label_smoothing=0.1).item() == pytest.approx(0.5843552, abs=1e-6)


def test_ipo_is_token_averaged():
    # chosen 1/4 = 0.25, rejected -2/5 = -0.4, h = 0.65; (0.65 - 1/(2*0.1))^2 = (0.65 - 5)^2 = 18.9225
    assert losses.ipo(pair(), beta=0.1).item() == pytest.approx(18.9225, abs=1e-6)


def test_hinge_slic():
    # max(0, 1 - 0.3) = 0.7; and zero once beta*delta passes 1
    assert losses.hinge(pair(), beta=0.1).item() == pytest.approx(0.7, abs=1e-9)
    assert losses.hinge(pair(), beta=0.5).item() == 0.0


def test_robust():
    # (0.9 * 0.5543552 - 0.1 * 0.8543552) / (1 - 0.2) = 0.4134842 / 0.8 = 0.5168552
    assert losses.robust(pair(), beta=0.1, label_smoothing=0.1).item() == pytest.approx(0.5168552, abs=1e-6)
    # with eps = 0 it is plain DPO
    assert losses.robust(pair(), beta=0.1).item() == pytest.approx(0.5543552, abs=1e-6)
    with pytest.raises(ValueError):
        losses.robust(pair(), beta=0.1, label_smoothing=0.5)


def test_simpo_reference_free():
    # beta=2: 2 * (-10/4 - -14/5) - 0.5 = 2 * 0.3 - 0.5 = 0.1; log(1 + e^-0.1) = 0.6443967
    p = pair()
    assert losses.simpo(p, beta=2.0, gamma=0.5).item() == pytest.approx(0.6443967, abs=1e-6)
    # the reference log-probs play no part
    p.ref_chosen, p.ref_rejected = torch.tensor([123.0]), torch.tensor([-7.0])
    assert losses.simpo(p, beta=2.0, gamma=0.5).item() == pytest.approx(0.6443967, abs=1e-6)


def test_dispatch_and_gradient_direction():
    p = pair()
    p.chosen.requires_grad_(True)
    loss = losses.make_loss(LossConfig("sigmoid", beta=0.1))(p).sum()
    loss.backward()
    assert p.chosen.grad.item() < 0  # raising the chosen log-prob lowers the loss
    with pytest.raises(ValueError, match="unknown loss_type"):
        LossConfig("nope", beta=0.1)


def test_registry_builds_each_loss_from_the_config_and_only_simpo_is_reference_free():
    p = pair()
    assert losses.make_loss(LossConfig("simpo", beta=2.0, simpo_gamma=0.5))(p).item() == \
        pytest.approx(0.6443967, abs=1e-6)
    assert losses.make_loss(LossConfig("robust", beta=0.1, label_smoothing=0.1))(p).item() == \
        pytest.approx(0.5168552, abs=1e-6)
    assert {name for name in losses.LOSSES if LossConfig(name).loss.reference_free} == {"simpo"}


def test_rpo_adds_the_chosen_replys_per_token_nll():
    # chosen -10 over 4 tokens: NLL per token 2.5; alpha 0.5 adds 1.25 to DPO's 0.5543552
    p = pair()
    assert losses.chosen_nll(p).item() == pytest.approx(2.5)
    rpo = losses.make_loss(LossConfig("sigmoid", beta=0.1, rpo_alpha=0.5))
    assert rpo(p).item() == pytest.approx(0.5543552 + 1.25, abs=1e-6)
    assert losses.make_loss(LossConfig("sigmoid", beta=0.1))(p).item() == pytest.approx(0.5543552, abs=1e-6)
    # its gradient raises the chosen reply's log-prob more than DPO alone does
    chosen = torch.tensor([-10.0], requires_grad=True)
    rpo(PairLogps(chosen, p.rejected, p.ref_chosen, p.ref_rejected, p.chosen_tokens, p.rejected_tokens)).sum().backward()
    # d/dchosen: -beta * sigmoid(-0.3) - alpha / 4 = -0.1 * 0.4255575 - 0.125
    assert chosen.grad.item() == pytest.approx(-0.04255575 - 0.125, abs=1e-6)
    with pytest.raises(ConfigError, match="--rpo_alpha"):
        LossConfig("sigmoid", rpo_alpha=-1.0)
