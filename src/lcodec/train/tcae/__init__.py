"""Training the inclined TCAE entropy models: ``python -m lcodec.train.tcae COMMAND``.

One module per job: :mod:`.codes` (codes files), :mod:`.make_codes` (codes from an
autoencoder), :mod:`.inputs` (what the float models read), :mod:`.fit` (training),
:mod:`.freeze` (to the integer models), :mod:`.evaluate` (code lengths), :mod:`.bench`
(speed) and :mod:`.cli` (the subcommands).
"""
