"""Python side of the text benchmark: sentence-transformers (PyTorch CPU) or onnxruntime embeds the captions and
prints one JSON line, like bench/text/swift.

Usage: peer.py st|ort MODEL_DIR CAPTIONS.txt BATCH THREADS [MODEL.onnx]
"""
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def sentence_transformers_runner(model_dir, threads):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    return lambda texts: model.encode(texts, batch_size=len(texts), convert_to_numpy=True)


def onnxruntime_runner(model_dir, threads, onnx_path):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch

    def run(texts):
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    return run


def main():
    framework, model_dir, captions_path, batch, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    captions = open(captions_path, encoding="utf-8").read().split("\n")
    captions = [c for c in captions if c]
    started = time.perf_counter()
    if framework == "st":
        run = sentence_transformers_runner(model_dir, threads)
    else:
        run = onnxruntime_runner(model_dir, threads, sys.argv[6])
    load = time.perf_counter() - started
    run(captions[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(captions), batch):
        run(captions[i:i + batch])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "sentences_per_s": len(captions) / seconds, "load_s": load,
                      "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
