import numpy as np

from qkdctl.detect import gan
from qkdctl.detect.base import load
from qkdctl.detect.factory import make_detector


def test_gan_trains_generates_and_reloads(features, monkeypatch, tmp_path):
    monkeypatch.setitem(gan.GAN_STEPS, True, 3)
    det = make_detector("gan", {"seed": 2, "quick": True}).fit(features["normal"])
    # 3 steps x 3 sampler jobs of BATCH latents
    assert det.shots == 3 * 3 * gan.BATCH * gan.SHOTS
    pts = det.generate(8, np.random.default_rng(1))
    assert pts.shape == (8, 4) and np.all(np.abs(pts) <= gan.OUTPUT_SCALE)
    s = det.score_matrix(features["blinding"])
    assert s.shape == (3,) and np.all(np.isfinite(s))
    det.save(tmp_path / "gan.pkl")
    np.testing.assert_array_equal(load(tmp_path / "gan.pkl").score_matrix(features["pns"]),
                                  det.score_matrix(features["pns"]))
