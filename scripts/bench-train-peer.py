#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-train.ts.

Trains a classifier on MobileNetV2 (width 0.35, random weights: only speed is measured) with the
same two strategies, sizes and batch as scarce, on 2 threads, and prints one JSON line of
images per second:
- feature extraction: features computed once in eval mode without gradients, then a head
  (dense 256 + ReLU, dropout 0.5, dense) trained for --head-epochs epochs;
- fine-tuning the last blocks (features.17 and features.18, which match Keras' block_16 and
  Conv_1) with the head, BatchNorm in eval mode, for --tune-epochs epochs, in two forms: the
  usual one (the whole network runs forward every step, the frozen part without gradients) and
  one that runs the frozen front once and trains on its cached output, as scarce does.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torchvision


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=512)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--head-epochs', type=int, default=20)
    parser.add_argument('--tune-epochs', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    return parser.parse_args()


def make_head():
    return nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 2))


def train_epochs(forward, parameters, inputs, labels, epochs, batch):
    optimizer = torch.optim.Adam(parameters, lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(inputs.shape[0])
        for start in range(0, inputs.shape[0], batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(forward(inputs[rows]), labels[rows])
            loss.backward()
            optimizer.step()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = torchvision.models.mobilenet_v2(width_mult=0.35).features.eval()
    images = torch.rand(args.images, 3, args.size, args.size) * 2 - 1
    labels = torch.randint(0, 2, (args.images,))
    result = {'images': args.images, 'size': args.size, 'batch': args.batch,
              'params': sum(p.numel() for p in network.parameters())}

    # Feature extraction: one forward pass per image, then the head alone.
    start = time.perf_counter()
    with torch.no_grad():
        features = torch.cat([network(images[i:i + 64]).mean((2, 3)) for i in range(0, args.images, 64)])
    head = make_head()
    train_epochs(head, head.parameters(), features, labels, args.head_epochs, args.batch)
    seconds = time.perf_counter() - start
    result['featureExtraction'] = {'seconds': seconds, 'imagesPerSecond': args.images * args.head_epochs / seconds}

    # Fine-tuning as usually written: the whole network forward every step.
    front, tail = network[:17], network[17:]
    for parameter in front.parameters():
        parameter.requires_grad_(False)
    head = make_head()

    def whole(x):
        with torch.no_grad():
            x = front(x)
        return head(tail(x).mean((2, 3)))

    start = time.perf_counter()
    train_epochs(whole, list(tail.parameters()) + list(head.parameters()), images, labels, args.tune_epochs, args.batch)
    seconds = time.perf_counter() - start
    result['fineTune'] = {'seconds': seconds, 'imagesPerSecond': args.images * args.tune_epochs / seconds}

    # Fine-tuning on a cached front, the same algorithm as scarce.
    start = time.perf_counter()
    with torch.no_grad():
        cached = torch.cat([front(images[i:i + 64]) for i in range(0, args.images, 64)])
    head = make_head()
    train_epochs(lambda x: head(tail(x).mean((2, 3))), list(tail.parameters()) + list(head.parameters()), cached, labels, args.tune_epochs, args.batch)
    seconds = time.perf_counter() - start
    result['fineTuneCachedFront'] = {'seconds': seconds, 'imagesPerSecond': args.images * args.tune_epochs / seconds}
    print(json.dumps(result))


if __name__ == '__main__':
    main()
