"""Training of network v1 (:mod:`lcodec.nets.cwic`): the resumable training loop (seed 004
§3.2-3.4). ``python -m lcodec.train.v1 CONFIG.json RUN_DIR [--max-minutes M]`` trains or
resumes a run (the current network, v2, trains with ``python -m lcodec.train``).

One config (JSON) describes a run. Checkpoints hold the model, optimizer, step, schedule and
every RNG state, so a resumed run continues exactly where it stopped. Progress goes to
``log.csv`` (and a progress line on a terminal).

Loss = distortion (:mod:`lcodec.train.losses`: MSE, MS-SSIM or YCbCr-L1 with chroma weight γ,
optionally + ΔE00; with ``log_scale`` its per-image log) + λ·max(0, rate − r) + quantization
loss (eq. 9, reaching only the LCMQ centres). The rate is the bpp the importance mask would
cost before entropy coding (eq. 8 in bits, with threshold r = ``rate_threshold``); the rate
knob (an offset added to the importance map) is drawn at random per image, so that one model
covers a range of rates. The first ``pretrain_fraction`` of the steps trains without the
importance mask (§3.4).

Options from the paper and its seeds: ``quantizer`` lcmq | lloyd | uniform
(:class:`lcodec.quant.ChannelQuantizer`); ``importance`` ste (straight-through mask) |
two_stage (eqs. 13-19, :mod:`lcodec.train.importance`); ``lr_schedule`` decay (constant, then
geometric decay to ``lr_final`` from ``decay_from``) | plateau (÷10 when the validation loss has
not improved for ``plateau_patience`` validations, at most twice: 1e-4 → 1e-5 → 1e-6).

On CUDA the networks run under bf16 autocast in channels-last layout (codes, quantizer,
mask and losses stay fp32). A run with ``budget_minutes`` times its first steps and then
fixes its step count to fill the budget; its LR decay follows the larger of step and wall
time progress, so such a run always ends decayed but is not bit-reproducible. Every
``snapshot_every`` steps and at the end it writes ``snapshot.safetensors``: fp16 weights
with the config and step in the metadata, small enough to carry between machines, which
``init`` (weights to start from) and ``export`` accept.

One module per job: :mod:`.config` (the run's settings), :mod:`.objective` (the loss),
:mod:`.schedule` (the LR), :mod:`.weights` (snapshots and weights to start from),
:mod:`.validation`, :mod:`.run` (the run folder and the loop).
"""
