import DMLKit
import Foundation
import Testing

private func solid(_ width: Int, _ height: Int, _ r: UInt8, _ g: UInt8, _ b: UInt8) throws -> RGBImage {
    try RGBImage(width: width, height: height, pixels: (0..<width * height).flatMap { _ in [r, g, b] })
}

private func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
    Array(image.pixels[3 * (y * image.width + x)..<3 * (y * image.width + x) + 3])
}

@Suite struct ContactSheetTests {
    @Test func cellsSitOnAGridWithAWiderGapAfterTheQuery() {
        let sheet = ContactSheet(cellSize: 10, gap: 2, queryGap: 6)
        #expect(sheet.origin(row: 0, column: 0) == (2, 2))
        #expect(sheet.origin(row: 0, column: 1) == (18, 2))  // 2 + 10 + 6
        #expect(sheet.origin(row: 1, column: 2) == (30, 14))  // 18 + 10 + 2; 2 + 10 + 2
        #expect(sheet.canvasSize(rows: 2, columns: 3) == (42, 26))
    }

    @Test func imagesAreScaledIntoTheirCellsAndEmptyCellsStayBackground() throws {
        // A 2x2 image with four colours, drawn 2x; a nil cell; rows of different lengths.
        let quad = try RGBImage(width: 2, height: 2, pixels: [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
        let sheet = ContactSheet(cellSize: 4, gap: 1, queryGap: 3, background: (200, 200, 200))
        let image = try sheet.render([[quad, nil, quad], [try solid(1, 1, 7, 7, 7)]])
        #expect(image.width == 1 + 4 + 3 + 4 + 1 + 4 + 1 && image.height == 1 + 4 + 1 + 4 + 1)
        let (x0, y0) = sheet.origin(row: 0, column: 0)
        #expect(pixel(image, x0, y0) == [255, 0, 0] && pixel(image, x0 + 1, y0 + 1) == [255, 0, 0])
        #expect(pixel(image, x0 + 2, y0) == [0, 255, 0] && pixel(image, x0, y0 + 3) == [0, 0, 255])
        #expect(pixel(image, x0 + 3, y0 + 3) == [9, 9, 9])
        let empty = sheet.origin(row: 0, column: 1)
        #expect(pixel(image, empty.x + 1, empty.y + 1) == [200, 200, 200])
        let third = sheet.origin(row: 0, column: 2)
        #expect(pixel(image, third.x + 3, third.y) == [0, 255, 0])
        #expect(pixel(image, sheet.origin(row: 1, column: 0).x + 2, sheet.origin(row: 1, column: 0).y + 2) == [7, 7, 7])
        #expect(pixel(image, 0, 0) == [200, 200, 200])
        #expect(try RGBImage(encoded: image.pngData()) == image)
    }

    @Test func wideImagesKeepTheirAspectAndAreCentred() throws {
        let sheet = ContactSheet(cellSize: 8, gap: 0, queryGap: 0, background: (0, 0, 0))
        let image = try sheet.render([[try solid(4, 2, 50, 60, 70)]])
        // Scaled to 8x4, rows 2..5 of the cell.
        #expect(pixel(image, 0, 1) == [0, 0, 0] && pixel(image, 0, 2) == [50, 60, 70])
        #expect(pixel(image, 7, 5) == [50, 60, 70] && pixel(image, 7, 6) == [0, 0, 0])
    }
}
