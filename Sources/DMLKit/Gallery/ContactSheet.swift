import Foundation

/// A grid of images on one canvas: each row a query image followed by its results, for a person to look at.
///
/// Every cell is `cellSize` x `cellSize`; images are scaled to fit with nearest-neighbour sampling (aspect kept,
/// centred), so small thumbnails stay crisp. Cells are `gap` pixels apart, with `queryGap` pixels between the first
/// column (the query) and the rest; an empty cell (nil image) is left as background.
public struct ContactSheet: Sendable {
    /// Side of one cell in pixels.
    public var cellSize: Int
    /// Pixels between cells and around the border.
    public var gap: Int
    /// Pixels between the query column and the first result.
    public var queryGap: Int
    /// Background colour (RGB).
    public var background: (UInt8, UInt8, UInt8)

    /// A layout; sizes must be positive (`cellSize` >= 1, gaps >= 0).
    public init(cellSize: Int = 128, gap: Int = 4, queryGap: Int = 16, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.cellSize = cellSize
        self.gap = gap
        self.queryGap = queryGap
        self.background = background
    }

    /// Top-left corner of the cell at `row`, `column`.
    public func origin(row: Int, column: Int) -> (x: Int, y: Int) {
        let x = gap + column * (cellSize + gap) + (column > 0 ? queryGap - gap : 0)
        return (x, gap + row * (cellSize + gap))
    }

    /// Canvas size for `rows` rows of at most `columns` cells.
    public func canvasSize(rows: Int, columns: Int) -> (width: Int, height: Int) {
        guard rows > 0, columns > 0 else { return (2 * gap, 2 * gap) }
        let last = origin(row: rows - 1, column: columns - 1)
        return (last.x + cellSize + gap, last.y + cellSize + gap)
    }

    /// Draws the rows (each a query image then its results; nil leaves a cell empty).
    public func render(_ rows: [[RGBImage?]]) throws -> RGBImage {
        guard cellSize >= 1, gap >= 0, queryGap >= 0 else {
            throw ImageError(.invalid, description: "contact sheet: cell size must be positive and gaps non-negative")
        }
        let columns = rows.map(\.count).max() ?? 0
        let (width, height) = canvasSize(rows: rows.count, columns: columns)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            pixels[3 * p] = background.0
            pixels[3 * p + 1] = background.1
            pixels[3 * p + 2] = background.2
        }
        for (r, row) in rows.enumerated() {
            for (c, image) in row.enumerated() {
                guard let image else { continue }
                draw(image, at: origin(row: r, column: c), into: &pixels, width: width)
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Scales `image` into the cell at `corner` (aspect kept, centred, nearest neighbour).
    private func draw(_ image: RGBImage, at corner: (x: Int, y: Int), into pixels: inout [UInt8], width: Int) {
        guard image.width > 0, image.height > 0 else { return }
        let scale = Double(cellSize) / Double(max(image.width, image.height))
        let w = max(1, min(cellSize, Int((Double(image.width) * scale).rounded())))
        let h = max(1, min(cellSize, Int((Double(image.height) * scale).rounded())))
        let left = corner.x + (cellSize - w) / 2, top = corner.y + (cellSize - h) / 2
        for y in 0..<h {
            let sy = min(image.height - 1, y * image.height / h)
            for x in 0..<w {
                let sx = min(image.width - 1, x * image.width / w)
                let source = 3 * (sy * image.width + sx), target = 3 * ((top + y) * width + left + x)
                pixels[target] = image.pixels[source]
                pixels[target + 1] = image.pixels[source + 1]
                pixels[target + 2] = image.pixels[source + 2]
            }
        }
    }
}
