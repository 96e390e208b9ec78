// swift-tools-version:6.0
import PackageDescription

// Core modules (CFaiss, DMLNpy, DMLIndex, DMLRuntime) take no third-party Swift packages.
let package = Package(
    name: "DMLKit",
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "DMLKit", targets: ["DMLKit"]),
        .library(name: "DMLIndex", targets: ["DMLIndex"]),
        .library(name: "DMLNpy", targets: ["DMLNpy"]),
        .library(name: "DMLRuntime", targets: ["DMLRuntime"]),
        .library(name: "DMLText", targets: ["DMLText"]),
        .executable(name: "dml", targets: ["dml"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C header over a small C++ shim of FAISS (Debian's libfaiss.a has no C API symbols).
        // SIMD distance kernels with runtime CPU dispatch (AVX-512, AVX2+FMA, scalar).
        // Also the exact Flat k-NN search (GEMM tile + top-k), threaded with libgomp like FAISS.
        .target(name: "CDMLKernels", linkerSettings: [.linkedLibrary("gomp", .when(platforms: [.linux]))]),
        .target(
            name: "CFaiss",
            dependencies: ["CDMLKernels"],
            cxxSettings: [.headerSearchPath("compat")],
            linkerSettings: [
                .linkedLibrary("faiss"),
                .linkedLibrary("gomp", .when(platforms: [.linux])),
                // OpenBLAS carries BLAS and LAPACK; linking it (not libblas/liblapack) keeps one BLAS thread pool
                // in the process, shared with DMLRuntime.
                .linkedLibrary("openblas", .when(platforms: [.linux])),
                .linkedFramework("Accelerate", .when(platforms: [.macOS, .iOS])),
            ]
        ),
        .target(name: "DMLFiles"),
        .target(name: "DMLNpy", dependencies: ["DMLFiles"]),
        .target(name: "DMLIndex", dependencies: ["CFaiss", "DMLFiles"]),
        // BLAS seam for the runtime: Accelerate on Apple, OpenBLAS (CBLAS) elsewhere.
        .target(
            name: "CDMLBlas",
            linkerSettings: [
                .linkedLibrary("openblas", .when(platforms: [.linux])),
                .linkedFramework("Accelerate", .when(platforms: [.macOS, .iOS])),
            ]
        ),
        // SHA-256 blocks for the load-time fingerprint check (C stays fast in debug builds).
        .target(name: "CDMLHash"),
        // oneDNN convolutions where Debian's libdnnl exists (x86-64 Linux); the C side compiles to stubs elsewhere.
        .target(
            name: "CDMLDnnl",
            linkerSettings: [.linkedLibrary("dnnl", .when(platforms: [.linux])), .linkedLibrary("gomp", .when(platforms: [.linux]))]
        ),
        .target(name: "DMLRuntime", dependencies: ["CDMLBlas", "CDMLHash", "CDMLDnnl"]),
        // WordPiece tokenizer and BERT/MiniLM encoder over a Hugging Face model directory.
        .target(name: "DMLText", dependencies: ["DMLRuntime", "CDMLBlas"]),
        // PNG/JPEG in and PNG out through Debian's libpng and libjpeg-turbo.
        .target(
            name: "CImageIO",
            linkerSettings: [.linkedLibrary("png"), .linkedLibrary("jpeg")]
        ),
        // The system SQLite library: the gallery's store.
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "DMLKit", dependencies: ["CSQLite", "CImageIO", "DMLIndex", "DMLRuntime", "DMLNpy", "DMLText"]),
        .executableTarget(
            name: "dml",
            dependencies: [
                "DMLKit", "DMLIndex", "DMLNpy", "DMLRuntime", "DMLText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmark driver for bench/index/run.py (not part of the library).
        .executableTarget(name: "index-bench", dependencies: ["DMLIndex", "DMLNpy"], path: "bench/index/swift"),
        .testTarget(name: "DMLNpyTests", dependencies: ["DMLNpy"]),
        .testTarget(name: "DMLIndexTests", dependencies: ["DMLIndex", "DMLNpy", "CDMLKernels", "CFaiss"]),
        .testTarget(name: "DMLKitTests", dependencies: ["DMLKit", "DMLNpy"]),
        .testTarget(name: "DMLRuntimeTests", dependencies: ["DMLRuntime"]),
        .testTarget(name: "DMLTextTests", dependencies: ["DMLText", "DMLRuntime", "DMLNpy"]),
        // Text benchmark driver (bench/text/run.py runs it beside sentence-transformers and onnxruntime).
        .executableTarget(name: "text-bench", dependencies: ["DMLText", "CDMLBlas"], path: "bench/text/swift"),
        // Runtime benchmark driver (bench/runtime/run.py runs it side by side with PyTorch and onnxruntime).
        // Its C helper: the measured FMA peak (cpuid-gated AVX-512 / AVX2 loops) and the OpenBLAS kernel in use.
        .target(name: "CBenchMachine", dependencies: ["CDMLBlas"], path: "bench/runtime/cmachine"),
        .executableTarget(name: "runtime-bench", dependencies: ["DMLRuntime", "CDMLBlas", "CBenchMachine"], path: "bench/runtime/swift"),
        // Gallery benchmark driver (bench/gallery/run.py runs it beside the same pipeline in PyTorch + faiss-cpu).
        .executableTarget(name: "gallery-bench", dependencies: ["DMLKit", "DMLRuntime", "DMLText", "CDMLBlas"], path: "bench/gallery/swift"),
    ],
    cxxLanguageStandard: .cxx17
)
