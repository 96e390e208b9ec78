// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for DMLKit's readers, kept out of the main manifest. Build and run them with `make fuzz`
// (`swift build --sanitize=fuzzer --sanitize=address` in this directory). Each executable's only entry point is
// `LLVMFuzzerTestOneInput`; libFuzzer supplies `main`, so the sources are compiled as a library.
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

/// One libFuzzer executable `fuzz-NAME` (sources in `Sources/fuzz-NAME`) over the given DMLKit products.
func harnessTarget(_ name: String, products: [String], extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: "fuzz-\(name)",
        dependencies: ["FuzzSupport"] + extra + products.map { .product(name: $0, package: "DMLKit") },
        path: "Sources/fuzz-\(name)", swiftSettings: harness)
}

let package = Package(
    name: "DMLKitFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "DMLKit", path: "..")],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        .target(name: "FuzzSeeds", dependencies: [.product(name: "DMLKit", package: "DMLKit")], path: "Sources/FuzzSeeds"),
        harnessTarget("safetensors", products: ["DMLRuntime"]),
        harnessTarget("npy", products: ["DMLNpy"]),
        harnessTarget("faiss", products: ["DMLIndex"]),
        harnessTarget("tokenizer", products: ["DMLText"]),
        harnessTarget("coco", products: ["DMLKit"]),
        harnessTarget("image", products: ["DMLKit"]),
        harnessTarget("gallery", products: ["DMLKit", "DMLIndex"], extra: ["FuzzSeeds"]),
    ]
)
