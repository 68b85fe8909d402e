"""Peer of `backend_compare`'s `mspa_train_step`: the same MSPA network in PyTorch.

    OMP_NUM_THREADS=2 python benches/peers/mspa_train_step.py [--threads 2] [--batches 40]

The architecture and sizes of `mspa_align::model` with `MspaSettings::default()` on the
default world (300 authors; visual and audio features of 128, text features and the
composed-preference embedding of 384; d = 64; batches of 256 users with their last 32
tips; candidates: the batch's positives, 64 shared negatives and the authors the users
tipped before, about 300; T = 2 correction steps on a shortlist of 50; AdamW). Inputs
are random with those shapes: this times the network's forward, backward and optimiser
step, not the batch building that ours also does inside the same epoch. Prints one JSON
line with training examples per second.
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batches", type=int, default=40)
p.add_argument("--authors", type=int, default=300)
p.add_argument("--candidates", type=int, default=300)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

A, N, B, L, D, T, K = args.authors, min(args.candidates, args.authors), 256, 32, 64, 2, 50
DIMS, TEXT, TIP, PAIR = (128, 128, 384), 384, 3, 7


class Mspa(nn.Module):
    def __init__(self):
        super().__init__()
        self.modal_proj = nn.ModuleList(nn.Linear(f, D) for f in DIMS)
        self.modal_norm = nn.ModuleList(nn.LayerNorm(D) for _ in DIMS)
        self.modality_embedding = nn.Parameter(torch.randn(3, D) * 0.02)
        self.tip_context, self.tip_score = nn.Linear(TIP, D), nn.Linear(D, 1)
        self.tip_weights = nn.Parameter(torch.tensor([0.5, 0.5, -3.0]))
        self.cold = nn.Parameter(torch.zeros(1, D))
        self.history_proj, self.text_proj = nn.Linear(D, D), nn.Linear(TEXT, D)
        self.preference_norm, self.correction_norm = nn.LayerNorm(D), nn.LayerNorm(D)
        self.query, self.key, self.value = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.id_embedding = nn.Parameter(torch.randn(A, D) * 0.05)
        self.author_bias = nn.Parameter(torch.zeros(A, 1))
        self.pair_hidden, self.pair_out = nn.Linear(PAIR, 16), nn.Linear(16, 1)
        self.gate, self.correct = nn.Linear(3 * D, D), nn.Linear(2 * D, D)
        self.repeat_gate = nn.Linear(D, 1)
        self.dropout = nn.Dropout(0.2)
        self.log_scale = nn.Parameter(torch.tensor([-math.log(math.sqrt(D))]))

    def score(self, p, keys, values, absent, ids, bias, pair_bias, untipped, no_tips):
        # keys/values [B or 1, K*3, D]; ids [B or 1, K, D]
        q = self.query(p)
        logits = torch.matmul(q.unsqueeze(1), keys.transpose(1, 2)).view(p.shape[0], -1, 3)
        w = torch.softmax((logits / math.sqrt(D)).masked_fill(absent, -1e9), 2)
        per_view = torch.matmul(p.unsqueeze(1), values.transpose(1, 2)).view(p.shape[0], -1, 3)
        dot = (w * per_view).sum(2) + torch.matmul(p.unsqueeze(1), ids.transpose(1, 2)).squeeze(1)
        u = dot * self.log_scale.exp() + bias
        explore = torch.log_softmax(u, 1)
        repeat = torch.log_softmax((u + pair_bias).masked_fill(untipped, -1e9), 1)
        r = self.repeat_gate(p)
        log_rep = F.logsigmoid(r).masked_fill(no_tips, -1e9)
        log_exp = F.logsigmoid(-r).masked_fill(no_tips, 0.0)
        return q, w, explore, torch.logaddexp(repeat + log_rep, explore + log_exp)

    def forward(self, x):
        pres = x["presence"]
        views = torch.stack([(self.modal_norm[m](self.modal_proj[m](x["modal"][m]))
                              + self.modality_embedding[m]) * pres[:, m:m + 1] for m in range(3)], 1)
        has = x["has"]
        ids_all = self.id_embedding * has
        content = views.sum(1) / pres.sum(1, keepdim=True).clamp_min(1) + ids_all
        tips, ctx = x["tips"], x["context"]
        tokens = content[tips] + self.tip_context(ctx)
        w = self.tip_weights
        logits = (self.tip_score(tokens).squeeze(-1) + ctx[..., 0] * w[0] + ctx[..., 2] * w[1]
                  - (ctx[..., 1].exp() - 1) * F.softplus(w[2]))
        att = torch.softmax(logits.masked_fill(x["mask"] == 0, -1e9), 1) * x["mask"]
        pooled = self.dropout((att.unsqueeze(-1) * tokens).sum(1))
        text = self.text_proj(self.dropout(x["text"]))
        p = self.preference_norm(self.history_proj(pooled) + text)
        keys_all, values_all = self.key(views), self.value(views)
        cand = x["candidates"]
        n = cand.shape[0]
        keys, values = keys_all[cand].reshape(1, n * 3, D), values_all[cand].reshape(1, n * 3, D)
        ids = ids_all[cand].unsqueeze(0)
        bias = (self.author_bias[cand] * has[cand]).view(1, n)
        absent = (pres[cand] == 0).unsqueeze(0)
        pair_bias = self.pair_out(torch.relu(self.pair_hidden(x["pairs"]))).squeeze(-1)
        untipped = x["pairs"][..., 0] <= 0
        no_tips = untipped.all(1, keepdim=True)
        _, _, _, s0 = self.score(p, keys, values, absent, ids, bias, pair_bias, untipped, no_tips)
        steps = [s0]
        # The shortlist: the top K of step 0, the positive first.
        key = s0.detach().scatter_add(1, x["positives"].view(-1, 1), torch.full((B, 1), 1e9))
        short = key.topk(K, 1).indices
        flat = short.reshape(-1)
        sk = keys.view(n, 3 * D)[flat].view(B, K * 3, D)
        sv = values.view(n, 3 * D)[flat].view(B, K * 3, D)
        sid = ids[0][flat].view(B, K, D)
        sb = bias[0][flat].view(B, K)
        sa = absent[0][flat].view(B, K, 3)
        spb = pair_bias.gather(1, short)
        sut = untipped.gather(1, short)
        snt = sut.all(1, keepdim=True)
        hk, hv = keys_all[tips], values_all[tips]  # [B, L, 3, D]
        habsent = pres[tips] == 0
        hid = ids_all[tips]
        q, wts, explore, s = self.score(p, sk, sv, sa, sid, sb, spb, sut, snt)
        for _ in range(T):
            a = explore.exp()
            selected = torch.matmul((a.unsqueeze(-1) * wts).view(B, 1, K * 3), sv).squeeze(1)
            selected = selected + torch.matmul(a.unsqueeze(1), sid).squeeze(1)
            hl = (hk * q.view(B, 1, 1, D)).sum(3) / math.sqrt(D)
            hw = torch.softmax(hl.masked_fill(habsent, -1e9), 2)
            aligned = (hw.unsqueeze(-1) * hv).sum(2) + hid
            delta = (att.unsqueeze(-1) * aligned).sum(1) - selected
            g = torch.sigmoid(self.gate(torch.cat([p, delta, p * delta], 1)))
            p = self.correction_norm(p + g * torch.tanh(self.correct(torch.cat([p, delta], 1))))
            q, wts, explore, s = self.score(p, sk, sv, sa, sid, sb, spb, sut, snt)
            steps.append(s)
        return steps, values.view(n, 3, D).mean(1), text


def batch():
    modal = [torch.rand(A, f) - 0.5 for f in DIMS]
    mask = (torch.rand(B, L) < 0.6).float()
    return {
        "modal": modal, "presence": torch.ones(A, 3), "has": torch.ones(A, 1),
        "tips": torch.randint(0, A, (B, L)), "context": torch.rand(B, L, TIP), "mask": mask,
        "text": torch.rand(B, TEXT) - 0.5, "candidates": torch.randperm(A)[:N],
        "pairs": torch.rand(B, N, PAIR) - 0.8, "positives": torch.randint(0, N, (B,)),
    }


model = Mspa()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
data = [batch() for _ in range(4)]


def step(x):
    steps, content, text = model(x)
    pos = x["positives"]
    target0 = pos.view(-1, 1)
    norm = len(steps) * (len(steps) + 1) / 2
    loss = -torch.log_softmax(steps[0], 1).gather(1, target0).mean() / norm
    for t, s in enumerate(steps[1:], start=1):
        loss = loss - torch.log_softmax(s, 1)[:, 0].mean() * (t + 1) / norm
    # 0.1 x in-batch InfoNCE between the text preference and the positive's content.
    logits = F.normalize(text, dim=1) @ F.normalize(content[pos], dim=1).T * 10.0
    loss = loss + 0.1 * F.cross_entropy(logits, torch.arange(B))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()


step(data[0])
t = time.perf_counter()
for i in range(args.batches):
    step(data[i % len(data)])
s = time.perf_counter() - t
print(json.dumps({"what": "mspa_train_step (PyTorch)", "torch": torch.__version__,
                  "threads": args.threads, "batches": args.batches, "seconds": s,
                  "examples_per_second": args.batches * B / s}))
