"""Model file -> ONNX -> FP16 ONNX -> TensorRT engine (with a JSON sidecar), each one verified.

    model.safetensors --export_onnx---> <stem>-<hash>-g<rev>.onnx       fp32, dynamic N, H, W
                      --convert_fp16--> <stem>-<hash>-g<rev>.fp16.onnx  fp16 weights and compute,
                                                                    InstanceNorm (and Resize) in
                                                                    fp32 between Casts, fp32 I/O
                      --build_engine--> <stem>-<hash>-g<rev>-<precision>-<gpu>-trt<version>.engine
                                        + .json

<rev> is the revision of the graph export_onnx writes (onnx.GRAPH_REVISION).

Each file is written under a temporary name and renamed only once it passed its check:
ONNX vs PyTorch through onnxruntime (PSNR >= 45 dB), FP16 ONNX (>= 35 dB where onnxruntime's
CPU kernels run it), engine vs PyTorch FP32 on the GPU (>= 35 dB, no NaN, FP16 layers present).
TensorRT is imported only by the engine step: ONNX export works everywhere.

    onnx.py      model file -> ONNX          fp16.py     ONNX -> FP16 ONNX
    folding.py   pixel shuffles folded into convolutions, before the export
    profile.py   the shapes an engine takes  tensorrt.py ONNX -> engine (build, timing cache)
    engines.py   sidecars: which engine runs here
    verify.py    PSNR against PyTorch FP32 on photographs
The `vidgan export` command that chains them is vidgan.runtime.export_model.
"""

