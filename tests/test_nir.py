"""NIR export and import (tools/nir): the file, the round trip, the node equations, snnTorch."""
import copy

import numpy as np
import pytest
import torch
from helpers import TINY_ARGS

from stochep import EPNetwork, Neuron
from stochep.tools.nir import NIRExportError, export_nir, load_nir, run_reference
from stochep.tools.nir.measure import graph_scores, stochep_scores

nir = pytest.importorskip("nir", reason="NIR export needs the optional extra: pip install "
                          "'stochep[nir]' (the dev extra includes it)")


def _net(widths=(12, 9, 7), n_perclass=2, seed=0):
    torch.manual_seed(seed)
    net = EPNetwork.fc(list(widths), n_classes=3, n_perclass=n_perclass, init_scale=2.0,
                       neuron=Neuron(kappa=2.0))
    net.inference.steps = 20
    return net


def _x(n=16, d=12, seed=1):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def test_export_writes_a_file_nir_reads_with_the_settings_it_cannot_carry(tmp_path):
    net = _net()
    export_nir(net, tmp_path / "m.nir")
    g = nir.read(tmp_path / "m.nir")
    kinds = {k: type(n).__name__ for k, n in g.nodes.items()}
    assert kinds == {"input": "Input", "output": "Output", "up1": "Affine", "up2": "Affine",
                     "up3": "Affine", "down1": "Linear", "down2": "Linear",
                     "layer1": "CubaLIF", "layer2": "CubaLIF", "layer3": "CubaLIF"}
    assert ("layer2", "down1") in g.edges and ("down1", "layer1") in g.edges
    np.testing.assert_array_equal(g.nodes["down2"].weight, g.nodes["up3"].weight.T)
    assert g.metadata["stochep_T_free"] == 20 and g.metadata["stochep_n_perclass"] == 2
    assert g.metadata["stochep_spikes"] == "bernoulli"
    np.testing.assert_allclose(g.nodes["layer1"].metadata["stochep_state_box"], [0, 0.5])
    export_nir(net, tmp_path / "l.nir", neuron="li-if")
    g2 = nir.read(tmp_path / "l.nir")
    assert [type(g2.nodes[k]).__name__ for k in ("layer1.li", "layer1.scale", "layer1")] == \
        ["LI", "Scale", "IF"]


def test_round_trip_gives_the_same_weights_and_the_same_scores(tmp_path):
    net = _net()
    export_nir(net, tmp_path / "m.nir")
    back = load_nir(tmp_path / "m.nir")
    a, b = net.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (back.lam, back.neuron, back.n_perclass) == (net.lam, net.neuron, net.n_perclass)
    x = _x()
    assert torch.equal(stochep_scores(back, x), stochep_scores(net, x))
    assert torch.equal(back(x), net(x))  # the same spike stream too


def test_a_graph_that_stochep_did_not_write_is_one_error(tmp_path):
    g = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3), dtype=np.float32)))
    with pytest.raises(NIRExportError, match="no stochep metadata"):
        load_nir(g)
    with pytest.raises(NIRExportError, match="does not exist"):
        load_nir(tmp_path / "missing.nir")


def test_the_two_neuron_encodings_spike_alike(tmp_path):
    net, x = _net(), _x()
    a = run_reference(export_nir(net), x, 30)
    b = run_reference(export_nir(net, neuron="li-if"), x, 30)
    assert a.shape == (30, 16, 6) and a.sum() > 0
    assert (a == b).float().mean() > 0.99


@pytest.mark.parametrize("reset,expected", [("subtract", [0.0, 0.25, 0.6, 1.0]),
                                            ("nir", [0.0, 0.2, 0.5, 1.0])])
def test_an_if_neuron_fires_at_its_input_rate(reset, expected):
    """IF with threshold 1 (spike where v > 1) driven by a constant current I: reset by
    subtraction fires at clamp(I, 0, 1) per step; NIR's reset to 0 at 1 / (floor(1 / I) + 1)
    (0.25 -> 0.2, 0.6 -> 0.5)."""
    current = np.array([-0.3, 0.25, 0.6, 1.5], dtype=np.float32)
    g = nir.NIRGraph.from_list(
        nir.Affine(weight=np.zeros((4, 1), dtype=np.float32), bias=current),
        nir.IF(r=np.full(4, 1e4, dtype=np.float32), v_threshold=np.ones(4, dtype=np.float32)))
    spikes = run_reference(g, torch.zeros(1, 1), 200, reset=reset, dt=1e-4)
    np.testing.assert_allclose(spikes[-100:].mean(0)[0].numpy(), expected, atol=0.011)


def test_the_mean_field_fixed_point_is_carried_by_the_spiking_graph():
    """A small trained-like net: the reference executor's spike-count predictions agree with
    stochep's mean-field predictions on most inputs."""
    net = _net((12, 30, 9), n_perclass=3)
    net.inference.steps = 60
    x = _x(200)
    ref = stochep_scores(net, x).argmax(1)
    pred = graph_scores(export_nir(net, spike_window=40), x, "reference-subtract").argmax(1)
    assert (pred == ref).float().mean() >= 0.9


def test_unsupported_parts_are_one_error_naming_them():
    from stochep.engine.neurons import LIF
    from stochep.training.config import Config
    from stochep.training.models import build_network

    emb = torch.randn(30, 8)
    att = build_network(Config(layers=[{"attention": 6}], n_perclass=3, kappa=1.0), (4,), 2, emb)
    with pytest.raises(NIRExportError, match="layer 1 is a 'attention' layer"):
        export_nir(att)
    conv = build_network(Config(layers=[{"conv": 2, "kernel": 3, "pool": 2}]), (1, 8, 8), 10)
    with pytest.raises(NIRExportError, match="'conv' layer.*max-pooling"):
        export_nir(conv)
    lif = _net()
    lif.neuron = LIF()
    with pytest.raises(NIRExportError, match="only the paper's hard-sigmoid neuron"):
        export_nir(lif)
    with pytest.raises(NIRExportError, match="neuron encoding"):
        export_nir(_net(), neuron="izhikevich")
    with pytest.raises(NIRExportError, match="threshold_scale must be a number > 0"):
        export_nir(_net(), threshold_scale=0)


def test_threshold_scale_sets_the_integrate_and_fire_threshold():
    g = export_nir(_net(), threshold_scale=0.9)
    np.testing.assert_allclose(g.nodes["layer2"].v_threshold, 0.45)  # 0.9 / kappa
    assert g.metadata["stochep_threshold_scale"] == 0.9
    g = export_nir(_net(), neuron="li-if", threshold_scale=0.9)
    np.testing.assert_allclose(g.nodes["layer2"].v_threshold, 0.9)


def test_the_graph_runs_in_snntorch_as_in_the_reference_executor(tmp_path):
    pytest.importorskip("snntorch", reason="running a graph in snnTorch needs the optional "
                        "extra: pip install 'stochep[nir]' (the dev extra includes it)")
    from stochep.tools.nir import run_snntorch

    export_nir(_net(), tmp_path / "m.nir")
    g, x = nir.read(tmp_path / "m.nir"), _x()  # nodes listed alphabetically, not in flow order
    theirs = run_snntorch(copy.deepcopy(g), x, 30)
    ours = run_reference(g, x, 30)
    assert theirs.shape == ours.shape and ours.sum() > 0
    assert (theirs == ours).float().mean() > 0.99
    again = run_snntorch(g, x, 30)  # neuron states start afresh on every call
    assert torch.equal(again, theirs)


def test_cli_export_of_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    from stochep.cli import main

    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--format", "nir",
                 "--out", str(tmp_path / "m.nir")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0], lines
    assert not (tmp_path / "m.nir").exists()


@pytest.mark.slow
def test_cli_export_of_a_trained_run_writes_a_file_nir_reads(tmp_path, capsys):
    from stochep.cli import main

    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", *TINY_ARGS, "--no-progress", "--out", str(run)]) == 0
    out = tmp_path / "m.nir"
    assert main(["export", "--checkpoint", str(run / "checkpoint_best.pt"), "--format", "nir",
                 "--out", str(out)]) == 0
    g = nir.read(out)
    assert g.metadata["stochep_T_free"] == 8 and "layer2" in g.nodes
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run / "checkpoint_best.pt"), "--spike-window",
                 "0", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "spike_window must be >= 1" in lines[0], lines


def test_cli_export_of_a_conv_net_names_the_layer(tmp_path, capsys, digits):
    from stochep import Config, Dataset, Trainer
    from stochep.cli import main

    def img(x):
        return x[:256].reshape(-1, 1, 8, 8)

    data = Dataset("digits-images", img(digits.x_train), digits.y_train[:256],
                   img(digits.x_test), digits.y_test[:256], 10)
    cfg = Config(layers=[{"conv": 2, "kernel": 3, "pool": 2}], T_free=4, T_nudge=2, epochs=1,
                 batch_size=64)
    Trainer(cfg, data, str(tmp_path / "conv")).fit()
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(tmp_path / "conv" / "checkpoint_best.pt"),
                 "--out", str(tmp_path / "c.nir")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "layer 1 is a 'conv' layer" in lines[0], lines
