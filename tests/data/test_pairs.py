"""PairedBatches: the batches of pairs an image-conditional augmenter trains on."""

import torch

from handwriting_gan.data.batches import PairedBatches, ShuffledBatches


def labels_of(sizes):
    return torch.cat([torch.full((n,), label) for label, n in enumerate(sizes)])[torch.randperm(sum(sizes))]


def test_each_image_is_paired_with_another_image_of_its_class():
    labels = labels_of([5, 3, 2, 7])
    batches = list(PairedBatches(labels, batch_size=4, seed=1, drop_last=False))
    assert all(batch.shape[0] == 2 for batch in batches)
    anchors = torch.cat([b[0] for b in batches])
    partners = torch.cat([b[1] for b in batches])
    assert sorted(anchors.tolist()) == list(range(len(labels)))
    assert torch.equal(labels[anchors], labels[partners])
    assert (anchors != partners).all()


def test_a_class_of_one_image_pairs_it_with_itself():
    labels = torch.tensor([0, 1, 1, 1])
    (batch,) = PairedBatches(labels, batch_size=4, seed=0, drop_last=False)
    lonely = batch[0] == 0
    assert torch.equal(batch[1][lonely], torch.tensor([0]))


def test_pairs_follow_seed_and_epoch_and_anchors_follow_the_unpaired_order():
    labels = labels_of([6, 6, 6])
    sampler = PairedBatches(labels, batch_size=3, seed=5)
    first = [b.clone() for b in sampler]
    assert all(torch.equal(a, b) for a, b in zip(first, PairedBatches(labels, 3, seed=5), strict=True))
    sampler.set_epoch(1)
    assert not all(torch.equal(a, b) for a, b in zip(first, sampler, strict=True))
    plain = list(ShuffledBatches(len(labels), 3, seed=5))
    assert all(torch.equal(a[0], b) for a, b in zip(first, plain, strict=True))


def test_partners_vary_across_epochs():
    labels = labels_of([10])
    sampler = PairedBatches(labels, batch_size=10, seed=0)
    seen = set()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        (batch,) = sampler
        seen.update(zip(batch[0].tolist(), batch[1].tolist(), strict=True))
    assert len(seen) > 20  # 5 epochs x 10 pairs drawn from 90 possible ones
