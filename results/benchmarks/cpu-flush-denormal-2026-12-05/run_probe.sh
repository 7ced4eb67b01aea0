#!/usr/bin/env bash
# Fashion-MNIST seed 2's h:16 with and without flushing (2 threads, one after the other), then
# tiny-imagenet-100 seed 2's four h's with flushing (two one-thread processes side by side).
set -x
export FCT_PROGRESS=0
py=/work/main/.venv/bin/python
for flag in 0 1; do
  rm -rf fa$flag; mkdir -p fa$flag/fashion-mnist
  cp -al /work/rf/runs/fashion-mnist/seed2 fa$flag/fashion-mnist/seed2
  rm -rf fa$flag/fashion-mnist/seed2/transformation-b1346561ed
  FCT_CPU_FLUSH_DENORMAL=$flag $py train_h.py fashion-mnist 2 /work/dn/fa$flag h:16
done
cmp fa0/fashion-mnist/seed2/transformation-b1346561ed/model.pt fa1/fashion-mnist/seed2/transformation-b1346561ed/model.pt && echo FASHION_H16_IDENTICAL
rm -rf ti; mkdir -p ti/tiny-imagenet-100
cp -al /work/r23/runs/tiny-imagenet-100/seed2 ti/tiny-imagenet-100/seed2
for k in 05bb141bad f99ef76010 10022452a6 79d2994949; do rm -rf ti/tiny-imagenet-100/seed2/transformation-$k; done
FCT_CPU_FLUSH_DENORMAL=1 OMP_NUM_THREADS=1 $py train_h.py tiny-imagenet-100 2 /work/dn/ti h:0 h:0,to=cross:loss > tiA.log 2>&1 &
FCT_CPU_FLUSH_DENORMAL=1 OMP_NUM_THREADS=1 $py train_h.py tiny-imagenet-100 2 /work/dn/ti h:32 h:32,to=cross:loss > tiB.log 2>&1 &
wait
echo PROBE_DONE
