#!/usr/bin/env python3
"""The torchvision + PIL side of scripts/bench-augment.ts.

Reads every PNG under --input (class folders) and makes --views augmented views of each with
the same five transforms scarce runs (rotation, width and height shift, zoom, horizontal flip,
brightness). It encodes each view as PNG at --level (or keeps raw uint8 pixels) and writes it
with its label, source index, view and shape to one record file per worker; torchvision does not
return the values it drew, so none are stored. Debian 12 has no pyarrow
package, so the container is the closest equivalent without it: length-prefixed records, each a
JSON header followed by the image bytes. The container costs little next to the PNG codec.

Prints one JSON line: images read, views written, wall and CPU seconds (this process and its
workers), bytes written.
"""
import argparse
import io
import json
import os
import resource
import struct
import sys
import time
from multiprocessing import get_context

import torch
import torchvision.transforms as T
from PIL import Image


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, help='folder with one subfolder of PNG images per class')
    parser.add_argument('--output', required=True, help='folder for the record files')
    parser.add_argument('--views', type=int, default=1, help='augmented views per image')
    parser.add_argument('--workers', type=int, default=2, help='worker processes')
    parser.add_argument('--encoding', choices=['png', 'raw'], default='png')
    parser.add_argument('--level', type=int, default=6, help='zlib compression level of the PNG output')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--rotation', type=float, default=20, help='degrees')
    parser.add_argument('--shift', type=float, default=0.1, help='fraction of the size')
    parser.add_argument('--zoom', type=float, default=0.1, help='scale drawn from [1 - z, 1 + z]')
    parser.add_argument('--brightness', type=float, default=0.2, help='factor drawn from [1 - b, 1 + b]')
    return parser.parse_args()


def list_images(root):
    classes = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))
    images = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for file in sorted(os.listdir(folder)):
            if file.lower().endswith('.png'):
                images.append((os.path.join(folder, file), label))
    return images


def work(task):
    worker, images, args = task
    torch.set_num_threads(1)
    transform = T.Compose([
        T.RandomAffine(
            degrees=args.rotation,
            translate=(args.shift, args.shift),
            scale=(1 - args.zoom, 1 + args.zoom),
            interpolation=T.InterpolationMode.BILINEAR,
            fill=0,
        ),
        T.RandomHorizontalFlip(0.5),
        T.ColorJitter(brightness=args.brightness),
    ])
    path = os.path.join(args.output, f'peer-{worker:05d}.records')
    written = 0
    with open(path + '.tmp', 'wb') as output:
        for index, (file, label) in images:
            with Image.open(file) as opened:
                image = opened.convert('L' if opened.mode in ('L', 'LA', 'I;16') else 'RGB')
            for view in range(1, args.views + 1):
                torch.manual_seed(args.seed * 1_000_003 + index * 1_009 + view)
                augmented = transform(image)
                if args.encoding == 'png':
                    buffer = io.BytesIO()
                    augmented.save(buffer, format='PNG', compress_level=args.level)
                    data = buffer.getvalue()
                else:
                    data = augmented.tobytes()
                header = json.dumps({
                    'label': label, 'source_index': index, 'view': view,
                    'height': augmented.height, 'width': augmented.width, 'channels': len(augmented.getbands()),
                }).encode()
                output.write(struct.pack('<II', len(header), len(data)))
                output.write(header)
                output.write(data)
                written += 1
    os.replace(path + '.tmp', path)
    return written, os.path.getsize(path)


def main():
    args = parse_args()
    os.makedirs(args.output, exist_ok=True)
    images = list(enumerate(list_images(args.input)))
    # Contiguous blocks, one per worker, as scarce gives each worker whole shards.
    block = (len(images) + args.workers - 1) // args.workers
    tasks = [(w, images[w * block:(w + 1) * block], args) for w in range(args.workers)]
    def cpu_seconds():
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    start = time.perf_counter()
    cpu_start = cpu_seconds()
    pool = get_context('fork').Pool(args.workers)
    results = pool.map(work, tasks)
    # close and join reap the workers, so RUSAGE_CHILDREN counts their CPU time.
    pool.close()
    pool.join()
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    print(json.dumps({
        'images': len(images),
        'views': sum(count for count, _ in results),
        'seconds': seconds,
        'cpu_seconds': cpu,
        'bytes': sum(size for _, size in results),
        'versions': {'torch': torch.__version__, 'torchvision': __import__('torchvision').__version__, 'pillow': Image.__version__},
    }))


if __name__ == '__main__':
    sys.exit(main())
