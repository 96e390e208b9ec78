// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for DMLKit's readers, kept out of the main manifest. Build and run them with `make fuzz`
// (`swift build --sanitize=fuzzer --sanitize=address` in this directory). Each executable's only entry point is
// `LLVMFuzzerTestOneInput`; libFuzzer supplies `main`, so the sources are compiled as a library.
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "DMLKitFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "DMLKit", path: "..")],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        .target(name: "FuzzSeeds", dependencies: [.product(name: "DMLKit", package: "DMLKit")], path: "Sources/FuzzSeeds"),
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: ["FuzzSupport", .product(name: "DMLRuntime", package: "DMLKit")],
            path: "Sources/fuzz-safetensors", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-npy",
            dependencies: ["FuzzSupport", .product(name: "DMLNpy", package: "DMLKit")],
            path: "Sources/fuzz-npy", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-faiss",
            dependencies: ["FuzzSupport", .product(name: "DMLIndex", package: "DMLKit")],
            path: "Sources/fuzz-faiss", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-tokenizer",
            dependencies: ["FuzzSupport", .product(name: "DMLText", package: "DMLKit")],
            path: "Sources/fuzz-tokenizer", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-coco",
            dependencies: ["FuzzSupport", .product(name: "DMLKit", package: "DMLKit")],
            path: "Sources/fuzz-coco", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-image",
            dependencies: ["FuzzSupport", .product(name: "DMLKit", package: "DMLKit")],
            path: "Sources/fuzz-image", swiftSettings: harness),
        .executableTarget(
            name: "fuzz-gallery",
            dependencies: [
                "FuzzSupport", "FuzzSeeds", .product(name: "DMLKit", package: "DMLKit"),
                .product(name: "DMLIndex", package: "DMLKit"),
            ],
            path: "Sources/fuzz-gallery", swiftSettings: harness),
    ]
)
