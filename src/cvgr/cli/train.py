"""`cvgr train`: train one network with one defense into a run directory."""

from __future__ import annotations

import argparse

from cvgr.cli._common import (
    add_data_root,
    add_device,
    add_gr_step,
    add_output,
    emit,
)
from cvgr.devices import resolve_device
from cvgr.names import AdvKind, GRMode
from cvgr.options import RunOptions
from cvgr.train.config import TrainConfig

EPILOG = """\
defenses (combine freely):
  none          no defense option
  GR            --beta B [--q 1|2] [--gr-mode exact|reference|fd] [--fd-h H]
  noise         --noise SIGMA
  GR + noise    --beta 64 --noise 0.05   (the paper's Fashion-MNIST setting)
  PGD AT        --adv-eps EPS [--adv-steps K]   (K 4; step 1.85*EPS/K, random start)
  PGD-10 AT     --adv-eps EPS --adv-steps 10
  FGSM AT       --adv-eps EPS --adv-kind fgsm
  GR + PGD AT   --beta B --adv-eps EPS [--adv-steps K]   (penalty on the adversarial loss)
  TRADES        --trades BETA_T --adv-eps EPS [--adv-steps K]
                (published: BETA_T 6, K 10, inner step EPS/4 from x + 0.001*N(0,1))
  every defense trains real and complex nets alike (--complex)

defaults: each dataset's recipe (docs/method.md, section 6), SGD with lr x0.2 at each milestone:
{recipes}

example (--complex without --arch: the dataset's complex net, here MNISTNetV1):
  cvgr train --dataset fashion-mnist --complex --beta 64 --noise 0.05 --epochs 30 \\
      --out runs/c64

Epoch lines and the progress bar go to stderr (--quiet: neither); stdout gets the result, with
--json the final epoch's metrics as one JSON document.

RUN holds config.json, metrics.jsonl (one JSON line per epoch), model.safetensors (load with
cvgr.load(RUN)) and state.safetensors (resume state, rewritten after every epoch).
"""


def _recipes_text() -> str:
    """One line per distinct recipe, from the dataset specs (the one place they are written)."""
    from cvgr.data import DATASETS
    from cvgr.data.specs import Recipe

    by_recipe: dict[Recipe, list[str]] = {}
    for name, spec in DATASETS.items():
        by_recipe.setdefault(spec.recipe, []).append(name)
    lines = []
    for r, names in by_recipe.items():
        marks = ", ".join(f"{f:.0%}" for f in r.milestone_fractions)
        lines.append(f"  {', '.join(names)}: lr {r.lr:g}, momentum {r.momentum:g}, "
                     f"weight decay {r.weight_decay:g}, batch {r.batch_size}, "
                     f"{r.epochs} epochs, milestones at {marks} of the run")
    return "\n".join(lines)


def _dataset_help() -> str:
    from cvgr.data import DATASETS

    return ", ".join(DATASETS)


def _arch_help() -> str:
    from cvgr.data import DATASETS

    by_nets: dict[tuple[str, str], list[str]] = {}
    for name, spec in DATASETS.items():
        by_nets.setdefault((spec.settings.real_arch, spec.settings.complex_arch), []).append(name)
    return "; ".join(f"{', '.join(names)}: {real}, {cplx}"
                     for (real, cplx), names in by_nets.items())


def default_arch(dataset: str, complex_net: bool) -> str:
    """The paper's net for a dataset (its spec's settings), as `cvgr reproduce` picks it; ""
    for an unknown dataset, which `TrainConfig.resolved()` then names."""
    from cvgr.data import DATASETS

    spec = DATASETS.get(dataset)
    if spec is None:
        return ""
    return spec.settings.complex_arch if complex_net else spec.settings.real_arch


def _milestones(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("none", ""):
        return ()
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs like 20 or 40,60,72, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    """Add `cvgr train`: one argument group per part of a `TrainConfig`, then the run's."""
    p = sub.add_parser("train", help="train a network with a defense into a run directory",
                       description=__doc__, epilog=EPILOG.format(recipes=_recipes_text()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_what_to_train(p.add_argument_group("what to train"))
    _add_defense(p.add_argument_group("defense"))
    _add_optimiser(p.add_argument_group("optimiser (default: the dataset's recipe)"))
    _add_run(p.add_argument_group("run"))
    p.set_defaults(func=run)


def _add_what_to_train(g: argparse._ArgumentGroup) -> None:
    """The dataset, the net and the run directory."""
    g.add_argument("--dataset", required=True, help=_dataset_help())
    g.add_argument("--arch", default=None,
                   help="architecture name or reference alias (see `cvgr models`); default: "
                        f"the paper's net for the dataset, real or with --complex complex "
                        f"({_arch_help()})")
    g.add_argument("--complex", action="store_true",
                   help="build the complex (phase-to-magnitude) version; default real")
    g.add_argument("--out", required=True, metavar="RUN",
                   help="run directory; created if missing, must be empty or hold this run")


def _add_defense(g: argparse._ArgumentGroup) -> None:
    """Gradient regularization, input noise and adversarial training (PGD, FGSM, TRADES)."""
    g.add_argument("--beta", type=float, default=0.0,
                   help="gradient-regularization weight; 0 = no GR (paper: 512 MNIST, 64 "
                        "Fashion-MNIST). Penalty: mean_i ||dCE_mean/dx_i||_q^2")
    g.add_argument("--q", type=int, default=1, choices=(1, 2),
                   help="norm of the input gradient in the penalty (1, dual of L-inf; default 1)")
    g.add_argument("--gr-mode", default=str(GRMode.EXACT), choices=[str(m) for m in GRMode],
                   help="exact double backprop (default); reference = the published code's "
                        "truncated second pass; fd = finite-difference (Finlay & Oberman)")
    g.add_argument("--fd-h", type=float, default=None,
                   help="finite-difference step for --gr-mode fd (default: the regularizer's)")
    add_gr_step(g)
    g.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                   help="std of Gaussian noise added to training images, clamped to [0, 1]")
    g.add_argument("--adv-eps", type=float, default=0.0, metavar="EPS",
                   help="adversarial training L-inf radius in [0, 1]; 0 = off")
    g.add_argument("--adv-steps", type=int, default=None, metavar="K",
                   help="PGD steps for adversarial training (paper: 4 and 8) or TRADES' inner "
                        "steps (default 4 for PGD, 10 with --trades)")
    g.add_argument("--adv-kind", default=str(AdvKind.PGD), choices=[str(k) for k in AdvKind],
                   help="pgd (random start, step 1.85*eps/K) or fgsm (one step of eps)")
    g.add_argument("--trades", type=float, default=0.0, metavar="BETA_T",
                   help="TRADES weight of KL(f(x) || f(x')), x' from --adv-steps sign steps of "
                        "eps/4 inside --adv-eps (needs --adv-eps; published 6); 0 = off")


def _add_optimiser(g: argparse._ArgumentGroup) -> None:
    """SGD and its schedule; each left unset takes the dataset's recipe."""
    g.add_argument("--epochs", type=int, default=None, help="epochs (recipe)")
    g.add_argument("--lr", type=float, default=None, help="SGD learning rate (recipe)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (0.875)")
    g.add_argument("--weight-decay", type=float, default=None, help="weight decay (1e-4)")
    g.add_argument("--batch-size", type=int, default=None, help="batch size (recipe)")
    g.add_argument("--milestones", type=_milestones, default=None, metavar="E1,E2",
                   help="epochs after which lr is multiplied by --lr-gamma, or 'none' "
                        "(default: the recipe's fractions of --epochs)")
    g.add_argument("--lr-gamma", type=float, default=0.2, help="lr factor at milestones (0.2)")


def _add_run(g: argparse._ArgumentGroup) -> None:
    """Seed, data limits, measurements, where it runs, resuming and the output."""
    g.add_argument("--seed", type=int, default=0, help="seed of init, data order, noise, attacks")
    g.add_argument("--train-images", type=int, default=None, metavar="N",
                   help="use only the first N training images (quick runs)")
    g.add_argument("--test-images", type=int, default=None, metavar="N",
                   help="validate on the first N test images")
    g.add_argument("--cos-batches", type=int, default=1, metavar="N",
                   help="batches per epoch on which the cosine between the CE and full-"
                        "objective parameter gradients is measured (default 1, 0 = off)")
    add_data_root(g)
    add_device(g)
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in RUN (same settings required)")
    add_output(g)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, complex=args.complex,
        arch=args.arch if args.arch is not None else default_arch(args.dataset, args.complex),
        beta=args.beta, q=args.q, gr_mode=args.gr_mode, fd_h=args.fd_h, noise=args.noise,
        adv_eps=args.adv_eps, adv_steps=args.adv_steps, adv_kind=args.adv_kind,
        trades=args.trades,
        epochs=args.epochs, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, batch_size=args.batch_size,
        milestones=args.milestones, lr_gamma=args.lr_gamma, seed=args.seed,
        train_images=args.train_images, test_images=args.test_images, cos_batches=args.cos_batches,
    )


def run(args: argparse.Namespace) -> int:
    from cvgr.train import train

    cfg = config_from_args(args)
    device = resolve_device(args.device)
    options = RunOptions.for_terminal(args.quiet, device=device, data_root=args.data_root,
                                      gr_step=args.gr_step)
    metrics = train(cfg, args.out, resume=args.resume, options=options)
    emit(args, metrics,
         [f"done: {args.out}  val acc {100 * metrics.get('val_acc', float('nan')):.2f}%"])
    return 0
