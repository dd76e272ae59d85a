#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-synth.ts.

Times training steps of the same class-conditional GAN as scarce's default, on random images
(only speed is measured), and prints one JSON line with steps per second:
- generator: z (100) concatenated with a bias-free linear embedding (32) of the one-hot label,
  linear to 7x7x32, batch norm, ReLU, 4x4 stride-2 transposed convolution to 16 channels, batch
  norm, ReLU, 4x4 stride-2 transposed convolution to 1 channel, tanh;
- discriminator: 4x4 stride-2 convolutions to 16 and 32 channels with LeakyReLU(0.2), a
  minibatch standard deviation channel over groups of 4, and the projection score
  linear(h) + <embed(label), h>;
- one step: a discriminator step on 32 real and 32 fake images, a generator step on 32 fakes,
  both through DiffAugment (colour, translation 1/8, cutout 1/2), hinge loss, Adam (4e-4 and
  1.6e-3, betas 0.5 and 0.999), an R1 penalty (gamma 0.01) every 16 steps, and an update of
  the exponential moving average of the generator.
"""
import argparse
import copy
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--size', type=int, default=28)
    parser.add_argument('--threads', type=int, default=2)
    return parser.parse_args()


class Generator(nn.Module):
    def __init__(self, size, classes, latent=100, embedding=32, widths=(32, 16)):
        super().__init__()
        self.start = size // 4
        self.widths = widths
        self.embed = nn.Linear(classes, embedding, bias=False)
        self.project = nn.Linear(latent + embedding, self.start * self.start * widths[0], bias=False)
        self.bn0 = nn.BatchNorm2d(widths[0], momentum=0.01, eps=1e-5)
        self.up1 = nn.ConvTranspose2d(widths[0], widths[1], 4, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[1], momentum=0.01, eps=1e-5)
        self.up2 = nn.ConvTranspose2d(widths[1], 1, 4, 2, 1)

    def forward(self, z, one_hot):
        x = self.project(torch.cat([z, self.embed(one_hot)], 1))
        x = F.relu(self.bn0(x.view(-1, self.widths[0], self.start, self.start)))
        x = F.relu(self.bn1(self.up1(x)))
        return torch.tanh(self.up2(x))


class Discriminator(nn.Module):
    def __init__(self, size, classes, widths=(16, 32), group=4):
        super().__init__()
        self.group = group
        self.conv1 = nn.Conv2d(1, widths[0], 4, 2, 1)
        self.conv2 = nn.Conv2d(widths[0], widths[1], 4, 2, 1)
        features = (size // 4) ** 2 * (widths[1] + 1)
        self.score = nn.Linear(features, 1)
        self.embed = nn.Linear(classes, features, bias=False)

    def forward(self, images, one_hot):
        x = F.leaky_relu(self.conv1(images), 0.2)
        x = F.leaky_relu(self.conv2(x), 0.2)
        n, c, h, w = x.shape
        grouped = x.view(n // self.group, self.group, c, h, w)
        std = torch.sqrt(grouped.var(1, unbiased=False) + 1e-8).mean((1, 2, 3))
        x = torch.cat([x, std.repeat_interleave(self.group).view(n, 1, 1, 1).expand(n, 1, h, w)], 1)
        h_features = x.flatten(1)
        return self.score(h_features) + (self.embed(one_hot) * h_features).sum(1, keepdim=True)


def diff_augment(x):
    n, _, h, w = x.shape
    # Colour: brightness +-0.5 and contrast x[0.5, 1.5); saturation needs colour images.
    x = x + (torch.rand(n, 1, 1, 1) - 0.5)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1) + 0.5) + mean
    # Translation by whole pixels in [-s, s] with zero fill, through index grids.
    shift = round(h * 0.125)
    dy = torch.randint(-shift, shift + 1, (n, 1, 1))
    dx = torch.randint(-shift, shift + 1, (n, 1, 1))
    rows = torch.arange(h).view(1, h, 1) - dy
    cols = torch.arange(w).view(1, 1, w) - dx
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    flat = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(n, x.shape[1], h * w)
    x = torch.gather(x.flatten(2), 2, flat).view_as(x) * inside
    # Cutout of a square with half the side.
    cut = round(h * 0.5)
    cy = torch.randint(0, h + (1 - cut % 2), (n, 1, 1))
    cx = torch.randint(0, w + (1 - cut % 2), (n, 1, 1))
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    keep = ~((ys >= cy - cut // 2) & (ys < cy - cut // 2 + cut) & (xs >= cx - cut // 2) & (xs < cx - cut // 2 + cut))
    return x * keep.unsqueeze(1)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    classes = 2
    generator = Generator(args.size, classes)
    averaged = copy.deepcopy(generator)
    discriminator = Discriminator(args.size, classes)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=4e-4, betas=(0.5, 0.999))
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1.6e-3, betas=(0.5, 0.999))
    real = torch.rand(args.batch, 1, args.size, args.size) * 2 - 1
    one_hot = F.one_hot(torch.arange(args.batch) % classes, classes).float()

    def step(index):
        fakes = generator(torch.randn(args.batch, 100), one_hot).detach()
        augmented = diff_augment(torch.cat([real, fakes]))
        augmented_real = augmented[:args.batch]
        penalise = index % 16 == 0
        if penalise:
            augmented_real = augmented_real.detach().requires_grad_(True)
        scores = discriminator(torch.cat([augmented_real, augmented[args.batch:]]), torch.cat([one_hot, one_hot]))
        loss = F.relu(1 - scores[:args.batch]).mean() + F.relu(1 + scores[args.batch:]).mean()
        if penalise:
            gradient, = torch.autograd.grad(discriminator(augmented_real, one_hot).sum(), augmented_real, create_graph=True)
            loss = loss + gradient.square().sum((1, 2, 3)).mean() * (0.01 / 2) * 16
        d_optimizer.zero_grad()
        loss.backward()
        d_optimizer.step()

        g_loss = -discriminator(diff_augment(generator(torch.randn(args.batch, 100), one_hot)), one_hot).mean()
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()
        with torch.no_grad():
            for average, weight in zip(averaged.parameters(), generator.parameters()):
                average.mul_(0.999).add_(weight, alpha=0.001)

    for index in range(args.warmup):
        step(index)
    start = time.perf_counter()
    for index in range(args.steps):
        step(index)
    seconds = time.perf_counter() - start
    print(json.dumps({'steps': args.steps, 'batch': args.batch, 'size': args.size, 'threads': args.threads,
                      'seconds': seconds, 'stepsPerSecond': args.steps / seconds,
                      'torch': torch.__version__, 'blas': torch.__config__.show().count('BLAS')}))


if __name__ == '__main__':
    main()
