"""Embedding throughput: the `sl` embedder against a bare torchvision ResNet50 forward pass
on the same images in the same run. The embedder adds only the resize to 224 and the normalisation;
its output is asserted equal to the bare model's before timing."""
import pytest
import torch
import torchvision

from manifpt.backbones import imagenet_normalize
from manifpt.bench import time_min
from manifpt.spaces.features import ResNetFeatures

BATCH = {"small": 8, "demo": 16, "full": 64}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


def test_sl_embed_vs_bare_resnet50(benchmark, weights, request):
    n = BATCH[request.config.getoption("--preset")]
    emb = ResNetFeatures("sl", weights, batch_size=n)
    images = torch.rand(n, 3, 224, 224)
    bare = emb.model  # the same network without the embedder around it
    normalised = imagenet_normalize(images)
    with torch.inference_mode():
        want = bare(normalised)
    torch.testing.assert_close(emb.embed(images), want, rtol=1e-4, atol=1e-4)

    def bare_forward():
        with torch.inference_mode():
            return bare(normalised)

    t_bare = time_min(bare_forward, 3)
    benchmark.pedantic(emb.embed, args=(images,), rounds=3, warmup_rounds=1)
    t_emb = benchmark.stats.stats.min
    benchmark.extra_info.update({"images": n, "bare_s": t_bare, "embed_s": t_emb, "embed_over_bare": t_emb / t_bare,
                                 "images_per_s": n / t_emb})
