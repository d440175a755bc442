"""Speed and memory of lcodec, stage by stage, next to JPEG, WebP and AVIF (``make bench``).

``python -m lcodec.evaluate.bench [IMAGES…] [--knob K | --bpp B] [--device cpu|cuda|all]
[--entropy auto|static|tcae] [--efforts 1,4,9]``

For each image (default: the Kodak folder ``../shared/data/kodak`` beside the checkout) it
times one lcodec encode and one decode, split into stages. The entropy method is the one
``encoder.analyse(…, entropy=--entropy)`` picks (auto: the method the model's card records
as coding its symbols smaller, see ``encoder.analysis.coder_for_encoding``); it is printed
with each table.

encode
  network      RGB → tensor, padding, RGB→YCbCr, encoder networks (``encoder.analyse``),
               LCMQ quantization and importance mask at the knob (``net.quantize``), and
               moving the codes to numpy.
  probs        entropy-model probabilities: the contexts of every symbol and its frequency
               row (static context: table look-ups; TCAE: the prefix masks and the integer
               networks' one forward pass, ``IntTcae.frequency_rows``).
  coding       range coding of those symbols with constriction.
  container    alpha/metadata side sections, header, framing and CRCs (``container.pack``).
decode
  container    parsing and CRC checks (``container.unpack``), model look-up (cached), side
               sections.
  probs        contexts and frequency rows of each batch of symbols (interleaved with coding:
               the contexts of channel k need the decoded channels before it; TCAE: the
               per-plane network work of ``IntTcae.decode``, plane t needs planes < t).
  coding       range decoding (the constriction calls, charged by ``entropy/coder.py``
               itself; for the TCAE interleaved plane by plane with the network work).
  network      codes → decoder networks → YCbCr→RGB → uint8 (``codec.reconstruct``).

The stages are the codec's own: ``encoder.analyse``, ``ImageAnalysis.encode`` and ``codec.decode``
take a stage timer, and the range coder (``entropy/coder.py``) charges its calls to
"coding" inside the entropy method's "probs" (``timed_coding``), so every entropy method is
timed through its real path with no copy of it here.

Memory: the peak resident set size (RSS) of the whole process (Python, numpy, torch CPU
allocations and libraries) during each encode and decode, sampled every 2 ms from
``/proc/self/statm`` (elsewhere only ``resource.getrusage`` ru_maxrss, the process-lifetime
peak, is available and is printed at the end); on CUDA also ``torch.cuda.max_memory_allocated``.

The command line (``--cli N``, default 2 images): what ``time lcodec encode``/``decode`` shows
a user, i.e. the wall time of the real commands as subprocesses (``IMG → .lic`` at the same
knob, ``.lic → .png``), next to the start-up every command pays before its first pixel
(Python, ``import torch``, loading the model: a subprocess that does only that) and the
in-process times above. CLI − start-up − in-process is the PNG reading/writing and the
checks of the command (``encode`` also verifies its file by decoding the symbols).

Effort levels (``--efforts``, default 1, the default effort and 9): the wall seconds of
``lcodec encode IMG OUT.lic --bpp B -e N`` (``--knob K`` without ``--bpp``) on the ``--cli``
images, and the bpp of each file.

Times are the best of ``--repeat`` runs after one untimed warm-up. The baselines are timed on
the same images at the setting of their ``lcodec eval`` sweep whose bpp is closest to lcodec's
file, and shown as ratios (lcodec seconds / codec seconds).

One module per job: :mod:`.stages` (the stage timer and the timed encode/decode),
:mod:`.memory` (peak RSS), :mod:`.cli_times` (the real commands as subprocesses),
:mod:`.baseline_times` (the traditional codecs), :mod:`.tables` (the report) and
:mod:`.command` (``python -m lcodec.evaluate.bench``).
"""
