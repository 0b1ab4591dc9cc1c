#!/usr/bin/python3
"""The reference numbers of tests/test_model_parity.cpp: the article's translators written again
in PyTorch, independently of the engine, and their loss and gradients on one small batch.

Run with Debian's PyTorch 1.13 (python3-torch):

    /usr/bin/python3 bench/torch_model_parity.py > /tmp/parity.inc

and paste the printed table into the test when a model's equations change on purpose (the test
says which configuration and parameter moved).

Everything here is float64 and deterministic: no random numbers. The parameters are a formula of
their position (param_value below; the names sorted as strings give each its index k), the batch
is fixed (three sentences of different lengths, so that the engine's padding must stay out of
the loss and the attention), dropout is off, and the teacher-forcing mask is fixed per sentence
(a sentence without forcing feeds its own argmax back). The reference runs one sentence at a time
without padding, with a hand-written LSTM cell (gates i, f, g, o as torch.nn.LSTM):

  encoder   embedding -> L LSTM layers; bidirectional: each layer's input is [fwd; bwd] of the
            layer below, the outputs and the final (h, c) are the sums of the two directions
  decoder   starts from the encoder's final (h, c) of every layer
  Bahdanau  query = fc_hidden(h_{t-1} of the top layer); score = v . tanh(query + fc_encoder(E_s));
            LSTM input [embedding; context]; classifier on the LSTM output
  Luong     LSTM first (input [embedding; previous context] with input feeding, zeros at t = 0);
            dot: E_s . h_t; general: E_s . (W h_t); concat: v . tanh(W (h_t + E_s)) (the article's
            form; the engine computes W h_t + W E_s); classifier on [h_t; context]
  loss      cross entropy with label smoothing, summed over the target tokens (</s> included) and
            divided by their number, as the trainer does
"""
import math

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
SRC_VOCAB, TGT_VOCAB = 19, 23
SOURCES = [[5, 9, 17, 4, 11], [13, 6], [7, 7, 18, 10]]  # lengths 5, 2, 4
TARGETS = [[8, 21, 5], [4, 12, 19, 12, 9], [15]]        # without <s> (1) and </s> (2)
# name, attention, hidden, layers, bidirectional, input feeding, label smoothing, forcing mask
CONFIGS = [
    ("bahdanau_bi2", "bahdanau", 7, 2, True, False, 0.1, "101"),
    ("dot_1", "dot", 6, 1, False, False, 0.0, "111"),
    ("general_feed2", "general", 5, 2, False, True, 0.1, "011"),
    ("concat_bi2_feed", "concat", 7, 2, True, True, 0.1, "110"),
]


def param_value(k, i):
    """Element i (row-major) of the k-th parameter in name order."""
    return 0.6 * math.sin(0.9 * i + 1.7 * k + 0.3)


def fingerprint_weight(i):
    return math.cos(0.37 * i + 0.2)


def shapes(att, H, L, bi, feed):
    s = {"encoder.embedding.weight": (SRC_VOCAB, H), "decoder.embedding.weight": (TGT_VOCAB, H)}
    for l in range(L):
        inp = H if l == 0 else (2 * H if bi else H)
        for suf in (["", "_reverse"] if bi else [""]):
            s[f"encoder.lstm.weight_ih_l{l}{suf}"] = (4 * H, inp)
            s[f"encoder.lstm.weight_hh_l{l}{suf}"] = (4 * H, H)
            s[f"encoder.lstm.bias_ih_l{l}{suf}"] = (4 * H,)
            s[f"encoder.lstm.bias_hh_l{l}{suf}"] = (4 * H,)
        dec_in = (2 * H if att == "bahdanau" or feed else H) if l == 0 else H
        s[f"decoder.lstm.weight_ih_l{l}"] = (4 * H, dec_in)
        s[f"decoder.lstm.weight_hh_l{l}"] = (4 * H, H)
        s[f"decoder.lstm.bias_ih_l{l}"] = (4 * H,)
        s[f"decoder.lstm.bias_hh_l{l}"] = (4 * H,)
    s["decoder.classifier.weight"] = (TGT_VOCAB, H if att == "bahdanau" else 2 * H)
    s["decoder.classifier.bias"] = (TGT_VOCAB,)
    if att == "bahdanau":
        s["decoder.fc_hidden.weight"] = (H, H)
        s["decoder.fc_encoder.weight"] = (H, H)
        s["decoder.weight"] = (1, H)
    if att in ("general", "concat"):
        s["decoder.attention.fc.weight"] = (H, H)
    if att == "concat":
        s["decoder.attention.weight"] = (1, H)
    return s


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (w_ih @ x + b_ih + w_hh @ h + b_hh).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def encode(P, H, L, bi, src):
    x = [P["encoder.embedding.weight"][t] for t in src]
    n = len(x)
    h_n, c_n = [], []
    for l in range(L):
        runs = []
        for d, suf in enumerate(["", "_reverse"] if bi else [""]):
            w = [P[f"encoder.lstm.{k}_l{l}{suf}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = torch.zeros(H), torch.zeros(H)
            outs = [None] * n
            for s in (range(n) if d == 0 else range(n - 1, -1, -1)):
                h, c = lstm_cell(x[s], h, c, *w)
                outs[s] = h
            runs.append((outs, h, c))
        if bi:
            x = [torch.cat([runs[0][0][s], runs[1][0][s]]) for s in range(n)]
            h_n.append(runs[0][1] + runs[1][1])
            c_n.append(runs[0][2] + runs[1][2])
        else:
            x = runs[0][0]
            h_n.append(runs[0][1])
            c_n.append(runs[0][2])
    memory = torch.stack([v[:H] + v[H:] for v in x] if bi else x)  # (S, H)
    return memory, h_n, c_n


def decoder_stack(P, L, x, h, c):
    h, c = list(h), list(c)
    for l in range(L):
        h[l], c[l] = lstm_cell(x, h[l], c[l], *[P[f"decoder.lstm.{k}_l{l}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")])
        x = h[l]
    return x, h, c


def sentence_loss(P, att, H, L, bi, feed, ls, src, tgt, force, gaps):
    memory, h, c = encode(P, H, L, bi, src)
    y_out, y_in = tgt + [2], [1] + tgt
    emb = P["decoder.embedding.weight"]
    context = torch.zeros(H)
    total, token = 0.0, 1
    for t in range(len(y_out)):
        if att == "bahdanau":
            query = P["decoder.fc_hidden.weight"] @ h[L - 1]
            scores = torch.tanh(query + memory @ P["decoder.fc_encoder.weight"].T) @ P["decoder.weight"][0]
            context = torch.softmax(scores, 0) @ memory
            out, h, c = decoder_stack(P, L, torch.cat([emb[token], context]), h, c)
            features = out
        else:
            x = torch.cat([emb[token], context]) if feed else emb[token]
            out, h, c = decoder_stack(P, L, x, h, c)
            if att == "dot":
                scores = memory @ out
            elif att == "general":
                scores = memory @ (P["decoder.attention.fc.weight"] @ out)
            else:
                scores = torch.tanh((out + memory) @ P["decoder.attention.fc.weight"].T) @ P["decoder.attention.weight"][0]
            context = torch.softmax(scores, 0) @ memory
            features = torch.cat([out, context])
        logits = P["decoder.classifier.weight"] @ features + P["decoder.classifier.bias"]
        total = total + F.cross_entropy(logits.unsqueeze(0), torch.tensor([y_out[t]]), label_smoothing=ls, reduction="sum")
        if t + 1 < len(y_out):
            if force:
                token = y_in[t + 1]
            else:
                top2 = torch.topk(logits.detach(), 2).values
                gaps.append(float(top2[0] - top2[1]))  # an argmax decided by rounding would make the test fragile
                token = int(logits.argmax())
    return total


def main():
    print("// printed by bench/torch_model_parity.py (PyTorch %s, float64)" % torch.__version__)
    for name, att, H, L, bi, feed, ls, mask in CONFIGS:
        sh = shapes(att, H, L, bi, feed)
        names = sorted(sh)
        P = {}
        for k, n in enumerate(names):
            numel = math.prod(sh[n])
            P[n] = torch.tensor([param_value(k, i) for i in range(numel)]).reshape(sh[n]).requires_grad_(True)
        total, tokens, gaps = 0.0, 0, []
        for b, (src, tgt) in enumerate(zip(SOURCES, TARGETS)):
            total = total + sentence_loss(P, att, H, L, bi, feed, ls, src, tgt, mask[b] == "1", gaps)
            tokens += len(tgt) + 1
        loss = total / tokens
        loss.backward()
        assert not gaps or min(gaps) > 1e-6, f"{name}: a free-running argmax is a near tie ({min(gaps)})"
        print(f'{{"{name}", models::AttentionKind::{att.capitalize()}, {H}, {L}, {str(bi).lower()}, {str(feed).lower()}, {ls}, "{mask}", {loss.item():.17g},')
        print("  {")
        for n in names:
            g = P[n].grad.reshape(-1)
            weighted = sum(float(g[i]) * fingerprint_weight(i) for i in range(g.numel()))
            print(f'    {{"{n}", {weighted:.17g}, {float((g * g).sum()):.17g}}},')
        print("  }},")


if __name__ == "__main__":
    main()
