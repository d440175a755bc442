"""Training of network v2 (:mod:`lcodec.nets.cwic2`), the current network: rate-distortion
with a code length. ``python -m lcodec.train RUN_DIR [--config C] --budget-minutes M
[--decay-minutes D]`` (also ``python -m lcodec.train.v2``) trains (or resumes) the run in
``RUN_DIR`` (default config: ``configs/v2-mse.json``) for ``M`` minutes of wall time.

Each image of a batch gets its own rate knob t ~ U(-1, 1) and its own
λ(t) = λ₋₁·(λ₊₁/λ₋₁)^((t+1)/2); its loss is ``bits/pixel + λ·255²·MSE(RGB)`` (or the
MS-SSIM distortion), weighted by √(λ_mid/λ) so that every rate moves the shared weights about
equally. The networks run under bf16 autocast on the CPU; GDN, quantization, the rate term
and the losses stay fp32.

Accumulation across calls: ``RUN_DIR/last.ckpt`` holds weights, optimizer, step, sampler and
every RNG state plus the wall and CPU seconds spent so far, so a resumed run continues
exactly. The LR is constant until the last ``D`` minutes of a call, which decay it
geometrically to ``lr_final`` for the weights shipped from that call; ``stable.ckpt`` is the
state where the decay began, and the next call resumes from it (the decayed state is for
export only). Guards: gradients are clipped, non-finite steps are skipped, and a loss spike
(EMA over 3× its value at the last checkpoint) rolls back to that checkpoint with half the
LR. ``log.csv`` logs training (step, wall s, CPU s, LR, loss, bpp, distortion, coded
fraction, every ``log_every`` steps, 50 by default), ``val.csv`` the held-out validation
(step, CPU-hours, knob, estimated bpp, PSNR, coded fraction, MS-SSIM, and for ``qat`` runs
the PSNR through the quantization-aware decoder); neither has a header row.
``RUN_DIR/threads``, when present, sets the thread count (of each process) while the run
goes on.

Decoder-only runs (``train_part: decoder``, :mod:`lcodec.train.qat`): the encoder, importance
head, encoder gains and priors are frozen, so every image keeps the symbols (and the files,
entropy tables and TCAE) of the model the run starts from; the loss is the distortion term
alone (bpp and coded fraction log as 0). With ``qat`` the decoder trains through the rounding
of the candidate 8-bit exact synthesis.

Data parallel: ``torchrun --standalone --nproc_per_node N -m lcodec.train RUN_DIR …`` trains
on N CPU processes (DistributedDataParallel over gloo); every rank draws the global batch of
``batch`` crops and trains on its slice, so N ranks compute what one process with the same
config computes (within float rounding), rank 0 alone validates, logs and checkpoints, and a
checkpoint resumes on any N that divides ``batch`` (:mod:`.distributed`).

One module per job: :mod:`.config` (the run's settings), :mod:`.objective` (the losses),
:mod:`.validation` (held-out scores), :mod:`.run` (the run folder: data, network,
checkpoints), :mod:`.loop` (the training loop), :mod:`.distributed` (the ranks of a
``torchrun``) and :mod:`.cli` (the command).
"""
