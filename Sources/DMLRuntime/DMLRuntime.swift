// DMLRuntime: forward-only embedding runtime (see docs/ARCHITECTURE.md).
public enum DMLRuntimeInfo { public static let formatVersion = 1 }
