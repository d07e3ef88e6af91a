"""The generative models of GM-Mini: four families (GAN, VAE, flow, diffusion), small enough to train on a
2-core CPU in minutes, with their design factors as constructor arguments.

Every model maps to 32x32 RGB. Data enter the models in [-1, 1] (the flows with `nonlinearity=sigmoid`
work in logit space instead), and every `sample()` returns uint8 images (B, 32, 32, 3).

Design factors (the columns of models.csv):
- upsampling: transposed (ConvTranspose 4x4, stride 2), nearest / bilinear (x2 resize + conv 3x3),
  pixelshuffle (conv 3x3 to 4C + PixelShuffle), none (flows: no upsampling at all);
- nonlinearity: the generator's last operation, tanh / sigmoid / none (a linear output, clamped to the
  pixel range only when sampled);
- normalization: batch / instance / group / actnorm / none, in the generator (GAN discriminators and VAE
  encoders are the same for every model of their family, so they are not a factor);
- loss: nonsaturating, lsgan, wgan-gp (GANs); elbo, beta-elbo (VAEs); mle (flows); eps-mse, x0-mse
  (diffusion: the network predicts the noise or the clean image).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 32


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be batch, instance, group or none here, got {kind!r}")


def up_layer(kind: str, cin: int, cout: int) -> nn.Module:
    """x2 upsampling from cin to cout channels."""
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1)
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(cin, cout, 3, 1, 1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, 1, 1), nn.PixelShuffle(2))
    raise ValueError(f"upsampling must be transposed, nearest, bilinear or pixelshuffle, got {kind!r}")


def output_to_pixels(y: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """The generator's output (after its last nonlinearity) -> [0, 1]."""
    if nonlinearity == "sigmoid":
        return y.clamp(0, 1)
    return ((y.clamp(-1, 1) + 1) / 2)


def update(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None = None) -> float:
    """One optimizer step on `loss` (gradients clipped to norm `clip` when given); returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    opt.step()
    return loss.item()


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (x01.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class Decoder(nn.Module):
    """z -> 4x4xC -> 8 -> 16 -> 32 through three upsampling blocks, then a 3x3 conv to RGB and the last
    nonlinearity. The generator of every GAN and the decoder of every VAE."""

    def __init__(self, z_dim=64, width=128, upsampling="transposed", normalization="batch", nonlinearity="tanh"):
        super().__init__()
        if nonlinearity not in ("tanh", "sigmoid", "none"):
            raise ValueError(f"nonlinearity must be tanh, sigmoid or none, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.width = width
        self.fc = nn.Linear(z_dim, 16 * width)
        layers = [norm_layer(normalization, width), nn.ReLU()]
        c = width
        for _ in range(3):
            layers += [up_layer(upsampling, c, c // 2), norm_layer(normalization, c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.Conv2d(c, 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        y = self.net(self.fc(z).view(-1, self.width, 4, 4))
        if self.nonlinearity == "tanh":
            return torch.tanh(y)
        if self.nonlinearity == "sigmoid":
            return torch.sigmoid(y)
        return y

    def to_data_range(self, x11: torch.Tensor) -> torch.Tensor:
        """Training images in [-1, 1] -> the range this decoder's output lives in."""
        return (x11 + 1) / 2 if self.nonlinearity == "sigmoid" else x11


class Critic(nn.Module):
    """The DCGAN-style discriminator (no normalization, so WGAN-GP's per-sample penalty is valid), the same
    for every GAN of the zoo."""

    def __init__(self, width=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(16 * 4 * width, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


# --------------------------------------------------------------------------------------------- GAN
class GAN(nn.Module):
    def __init__(self, upsampling, normalization, nonlinearity, loss, z_dim=64, width=128):
        super().__init__()
        if loss not in ("nonsaturating", "lsgan", "wgan-gp"):
            raise ValueError(f"GAN loss must be nonsaturating, lsgan or wgan-gp, got {loss!r}")
        self.loss, self.z_dim = loss, z_dim
        self.G = Decoder(z_dim, width, upsampling, normalization, nonlinearity)
        self.D = Critic()

    def optimizers(self):
        betas = (0.0, 0.9) if self.loss == "wgan-gp" else (0.5, 0.999)
        return (torch.optim.Adam(self.G.parameters(), 2e-4, betas=betas),
                torch.optim.Adam(self.D.parameters(), 2e-4, betas=betas))

    def _d_loss(self, real, fake):
        dr, df = self.D(real), self.D(fake)
        if self.loss == "nonsaturating":
            return F.softplus(-dr).mean() + F.softplus(df).mean()
        if self.loss == "lsgan":
            return 0.5 * ((dr - 1) ** 2).mean() + 0.5 * (df ** 2).mean()
        eps = torch.rand(real.shape[0], 1, 1, 1)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.D(mix).sum(), mix, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return df.mean() - dr.mean() + 10.0 * penalty

    def _g_loss(self, fake):
        df = self.D(fake)
        if self.loss == "nonsaturating":
            return F.softplus(-df).mean()
        if self.loss == "lsgan":
            return 0.5 * ((df - 1) ** 2).mean()
        return -df.mean()

    def train_step(self, x11, opts) -> float:
        """One discriminator and one generator update; the discriminator sees images in the generator's range."""
        opt_g, opt_d = opts
        real = self.G.to_data_range(x11)
        z = torch.randn(x11.shape[0], self.z_dim)
        fake = self.G(z)
        update(opt_d, self._d_loss(real, fake.detach()))
        return update(opt_g, self._g_loss(fake))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        y = self.G(torch.randn(n, self.z_dim))
        return to_uint8(output_to_pixels(y, self.G.nonlinearity))


# --------------------------------------------------------------------------------------------- VAE
class VAE(nn.Module):
    """Gaussian decoder with a fixed variance (sum-of-squares reconstruction) and a diagonal Gaussian encoder;
    beta-elbo weighs the KL term by `beta`."""

    def __init__(self, upsampling, normalization, nonlinearity, loss, z_dim=32, width=128, beta=4.0):
        super().__init__()
        if loss not in ("elbo", "beta-elbo"):
            raise ValueError(f"VAE loss must be elbo or beta-elbo, got {loss!r}")
        self.z_dim, self.beta = z_dim, (beta if loss == "beta-elbo" else 1.0)
        self.enc = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2048, 2 * z_dim))
        self.G = Decoder(z_dim, width, upsampling, normalization, nonlinearity)

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        (opt,) = opts
        mu, logvar = self.enc(x11).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        target = self.G.to_data_range(x11)
        # sum-of-squares with sigma = 0.1 in [-1, 1] units (scaled for the [0, 1] range of a sigmoid output)
        sigma = 0.05 if self.G.nonlinearity == "sigmoid" else 0.1
        rec = ((self.G(z) - target) ** 2).flatten(1).sum(1) / (2 * sigma ** 2)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
        return update(opt, (rec + self.beta * kl).mean() / x11[0].numel())

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        return to_uint8(output_to_pixels(self.G(torch.randn(n, self.z_dim)), self.G.nonlinearity))


# -------------------------------------------------------------------------------------------- flow
class ActNorm(nn.Module):
    """Glow's per-channel affine layer, initialised from the first batch (zero mean, unit variance)."""

    def __init__(self, channels):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("ready", torch.tensor(False))

    def forward(self, x):
        if not bool(self.ready):
            with torch.no_grad():
                self.loc.copy_(-x.mean((0, 2, 3), keepdim=True))
                self.log_scale.copy_(-x.std((0, 2, 3), keepdim=True).clamp_min(1e-3).log())
                self.ready.fill_(True)
        return (x + self.loc) * self.log_scale.exp(), self.log_scale.sum() * x.shape[2] * x.shape[3]

    def inverse(self, y):
        return y * (-self.log_scale).exp() - self.loc


class InvConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution (a learned channel mixing, initialised orthogonal)."""

    def __init__(self, channels, generator):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
        self.weight = nn.Parameter(w)

    def forward(self, x):
        logdet = torch.linalg.slogdet(self.weight)[1] * x.shape[2] * x.shape[3]
        return F.conv2d(x, self.weight[:, :, None, None]), logdet

    def inverse(self, y):
        return F.conv2d(y, torch.linalg.inv(self.weight)[:, :, None, None])


class Reverse(nn.Module):
    """RealNVP's fixed channel permutation between couplings (volume-preserving)."""

    def forward(self, x):
        return x.flip(1), x.new_zeros(())

    def inverse(self, y):
        return y.flip(1)


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a)) + t(x_a) with s bounded by tanh; the last conv starts at zero (identity)."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.half = channels // 2
        self.net = nn.Sequential(nn.Conv2d(self.half, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2 * (channels - self.half), 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))

    def _st(self, xa):
        s, t = self.net(xa).chunk(2, dim=1)
        return self.scale * torch.tanh(s), t

    def forward(self, x):
        xa, xb = x[:, :self.half], x[:, self.half:]
        s, t = self._st(xa)
        return torch.cat([xa, xb * s.exp() + t], 1), s.flatten(1).sum(1)

    def inverse(self, y):
        ya, yb = y[:, :self.half], y[:, self.half:]
        s, t = self._st(ya)
        return torch.cat([ya, (yb - t) * (-s).exp()], 1)


def squeeze(x):
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    b, c, h, w = x.shape
    return x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, 2 * h, 2 * w)


class Flow(nn.Module):
    """Two scales of affine couplings: squeeze to 12x16x16 (K steps), squeeze to 48x8x8 (K steps).
    normalization=actnorm gives Glow steps (actnorm, invertible 1x1 conv, coupling); none gives RealNVP
    steps (reverse permutation, coupling). nonlinearity=sigmoid models logit(x) (the inverse ends in a
    sigmoid); none models x in [-1, 1] (clamped when sampled). Dequantised with uniform noise, trained by
    maximum likelihood, sampled at temperature 0.7."""

    def __init__(self, normalization, nonlinearity, loss="mle", steps=4, hidden=48, seed=0):
        super().__init__()
        if loss != "mle":
            raise ValueError(f"flow loss must be mle, got {loss!r}")
        if normalization not in ("actnorm", "none") or nonlinearity not in ("sigmoid", "none"):
            raise ValueError("flow: normalization must be actnorm or none, nonlinearity sigmoid or none")
        self.nonlinearity, self.temperature = nonlinearity, 0.7
        g = torch.Generator().manual_seed(seed)
        self.levels = nn.ModuleList()
        for channels in (12, 48):
            layers = []
            for _ in range(steps):
                if normalization == "actnorm":
                    layers += [ActNorm(channels), InvConv1x1(channels, g)]
                else:
                    layers += [Reverse()]
                layers += [AffineCoupling(channels, hidden)]
            self.levels.append(nn.ModuleList(layers))

    def _preprocess(self, x01):
        """[0, 1] pixels (dequantised) -> the flow's data space, with log|det| of the map per image."""
        n = x01[0].numel()
        if self.nonlinearity == "sigmoid":
            p = 0.025 + 0.95 * x01  # keep away from 0 and 1, as RealNVP does
            y = torch.log(p) - torch.log1p(-p)
            logdet = (math.log(0.95) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
            return y, logdet
        return 2 * x01 - 1, torch.full((x01.shape[0],), n * math.log(2.0))

    def forward(self, y):
        logdet = torch.zeros(y.shape[0])
        for level in self.levels:
            y = squeeze(y)
            for layer in level:
                y, ld = layer(y)
                logdet = logdet + ld
        return y, logdet

    def inverse(self, z):
        for level in reversed(self.levels):
            for layer in reversed(level):
                z = layer.inverse(z)
            z = unsqueeze(z)
        return z

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        """Negative log-likelihood in bits per dimension of the 8-bit images."""
        (opt,) = opts
        x01 = ((x11 + 1) / 2 * 255 + torch.rand_like(x11)) / 256
        y, ld_pre = self._preprocess(x01)
        z, ld = self(y)
        n = x11[0].numel()
        log_pz = -0.5 * (z ** 2 + math.log(2 * math.pi)).flatten(1).sum(1)
        nll = -(log_pz + ld + ld_pre) + n * math.log(256)
        return update(opt, (nll / (n * math.log(2))).mean(), clip=50.0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self.eval()
        y = self.inverse(self.temperature * torch.randn(n, 48, 8, 8))
        if self.nonlinearity == "sigmoid":
            x01 = (torch.sigmoid(y) - 0.025) / 0.95
        else:
            x01 = (y.clamp(-1, 1) + 1) / 2
        return to_uint8(x01)


# --------------------------------------------------------------------------------------- diffusion
def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([a.sin(), a.cos()], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, normalization):
        super().__init__()
        self.n1, self.c1 = norm_layer(normalization, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.t = nn.Linear(tdim, cout)
        self.n2, self.c2 = norm_layer(normalization, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))


class UNet(nn.Module):
    """32 -> 16 -> 8 and back, one residual block per scale, skip connections by concatenation; the decoder
    path upsamples with the model's `upsampling`."""

    def __init__(self, upsampling, normalization, width=32, tdim=64):
        super().__init__()
        self.tdim = tdim
        self.tmlp = nn.Sequential(nn.Linear(tdim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        c1, c2, c3 = width, 2 * width, 2 * width
        self.inp = nn.Conv2d(3, c1, 3, 1, 1)
        self.d1 = ResBlock(c1, c1, tdim, normalization)
        self.down1 = nn.Conv2d(c1, c2, 3, 2, 1)
        self.d2 = ResBlock(c2, c2, tdim, normalization)
        self.down2 = nn.Conv2d(c2, c3, 3, 2, 1)
        self.mid = ResBlock(c3, c3, tdim, normalization)
        self.up2 = up_layer(upsampling, c3, c2)
        self.u2 = ResBlock(2 * c2, c2, tdim, normalization)
        self.up1 = up_layer(upsampling, c2, c1)
        self.u1 = ResBlock(2 * c1, c1, tdim, normalization)
        self.out = nn.Sequential(norm_layer(normalization, c1), nn.SiLU(), nn.Conv2d(c1, 3, 3, 1, 1))

    def forward(self, x, t):
        temb = self.tmlp(timestep_embedding(t, self.tdim))
        h1 = self.d1(self.inp(x), temb)
        h2 = self.d2(self.down1(h1), temb)
        h = self.mid(self.down2(h2), temb)
        h = self.u2(torch.cat([self.up2(h), h2], 1), temb)
        h = self.u1(torch.cat([self.up1(h), h1], 1), temb)
        return self.out(h)


class Diffusion(nn.Module):
    """DDPM (Ho et al. 2020) with T steps of a linear beta schedule rescaled from the 1000-step one; the
    network predicts the noise (eps-mse) or the clean image (x0-mse). Sampled by ancestral DDPM steps, the
    final image clamped to [-1, 1] (nonlinearity none).
    Sampled on 40 of the 200 steps (see `sample`)."""

    def __init__(self, upsampling, normalization, nonlinearity="none", loss="eps-mse", steps=200, width=32):
        super().__init__()
        if loss not in ("eps-mse", "x0-mse") or nonlinearity != "none":
            raise ValueError("diffusion: loss must be eps-mse or x0-mse, nonlinearity none")
        self.loss, self.T, self.sample_steps = loss, steps, 40
        self.net = UNet(upsampling, normalization, width)
        betas = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps, dtype=torch.float64)
        alphas_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas_bar", alphas_bar.float())

    def optimizers(self):
        return (torch.optim.Adam(self.parameters(), 1e-3),)

    def train_step(self, x11, opts) -> float:
        (opt,) = opts
        t = torch.randint(0, self.T, (x11.shape[0],))
        ab = self.alphas_bar[t][:, None, None, None]
        eps = torch.randn_like(x11)
        xt = ab.sqrt() * x11 + (1 - ab).sqrt() * eps
        target = eps if self.loss == "eps-mse" else x11
        return update(opt, F.mse_loss(self.net(xt, t), target), clip=1.0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling on `sample_steps` of the T training steps, evenly spaced (the respacing of
        Nichol & Dhariwal 2021): each jump uses the beta that takes alphas_bar from one kept step to the next."""
        self.eval()
        keep = torch.linspace(0, self.T - 1, min(self.sample_steps, self.T)).round().long().tolist()
        x = torch.randn(n, 3, SIZE, SIZE)
        for k in reversed(range(len(keep))):
            i = keep[k]
            ab = self.alphas_bar[i]
            ab_prev = self.alphas_bar[keep[k - 1]] if k > 0 else torch.tensor(1.0)
            beta = 1 - ab / ab_prev
            out = self.net(x, torch.full((n,), i, dtype=torch.long))
            x0 = (x - (1 - ab).sqrt() * out) / ab.sqrt() if self.loss == "eps-mse" else out
            x0 = x0.clamp(-1, 1)
            # posterior mean of q(x_prev | x_t, x0)
            mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * x
            x = mean + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * torch.randn_like(x) if k > 0 else mean
        return to_uint8((x.clamp(-1, 1) + 1) / 2)


FAMILIES = {"gan": GAN, "vae": VAE, "flow": Flow, "diffusion": Diffusion}


def make_model(family: str, upsampling: str, normalization: str, nonlinearity: str, loss: str, seed: int = 0) -> nn.Module:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if family == "flow":
        if upsampling != "none":
            raise ValueError("flows have no upsampling: upsampling must be 'none'")
        return Flow(normalization, nonlinearity, loss, seed=seed)
    return FAMILIES[family](upsampling, normalization, nonlinearity, loss)
