@_exported import DMLIndex
