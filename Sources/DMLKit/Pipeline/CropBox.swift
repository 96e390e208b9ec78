import DMLRuntime
import Foundation

/// A rectangle of whole pixels in an image (origin top-left, in the displayed frame): the part of a photo an item
/// was embedded from. Stored with the item, so re-embedding its image gives the same pixels.
public struct CropBox: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Left edge.
    public var x: Int
    /// Top edge.
    public var y: Int
    /// Width (at least 1).
    public var width: Int
    /// Height (at least 1).
    public var height: Int

    /// A box; refused (`ImageError`) when it is empty.
    public init(x: Int, y: Int, width: Int, height: Int) throws {
        guard width >= 1, height >= 1 else {
            throw ImageError(.invalid, description: "a crop box needs a positive size, got \(width)x\(height)")
        }
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    /// `x,y,width,height`.
    public var description: String { "\(x),\(y),\(width),\(height)" }

    /// Parses `x,y,width,height` (whole numbers).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3] else {
            throw ImageError(.invalid, description: "a crop box is x,y,width,height in whole pixels, got '\(text)'")
        }
        try self.init(x: x, y: y, width: w, height: h)
    }

    /// Whether the box lies inside a `width` x `height` image.
    public func fits(width: Int, height: Int) -> Bool {
        x >= 0 && y >= 0 && x <= width && y <= height && self.width <= width - x && self.height <= height - y
    }
}

/// How a person's crop is cut from an image: the annotation's region grown by a margin, then widened or heightened
/// to the model input's aspect ratio around its centre (so the resize to the model's input does not stretch the
/// person), and clamped to the image.
public struct PersonCropping: Sendable, Equatable {
    /// Margin added on every side, as a fraction of the region's longer side.
    public var margin: Double
    /// Width / height the crop is grown to (the model input's; nil keeps the region's own).
    public var aspectRatio: Double?

    /// Cropping with these settings.
    public init(margin: Double = 0.1, aspectRatio: Double? = 1) {
        self.margin = margin
        self.aspectRatio = aspectRatio
    }

    /// The cropping that suits `model`: its input's aspect ratio, 10 % margin.
    public static func forModel(_ model: EmbeddingModel) -> PersonCropping {
        let p = model.spec.preprocessing
        return PersonCropping(margin: 0.1, aspectRatio: p.map { Double($0.width) / Double($0.height) } ?? 1)
    }

    /// The crop of a region (`x, y, width, height` in pixels, e.g. a COCO bbox) in a `width` x `height` image.
    /// Refused when the region is not finite, empty, or lies outside the image.
    public func box(region: [Double], imageWidth: Int, imageHeight: Int) throws -> CropBox {
        guard region.count == 4, region.allSatisfy(\.isFinite), region[2] > 0, region[3] > 0 else {
            throw ImageError(.invalid, description: "a box is [x, y, width, height] with a positive size, got \(region)")
        }
        var (x0, y0, x1, y1) = (region[0], region[1], region[0] + region[2], region[1] + region[3])
        guard x1 > 0, y1 > 0, x0 < Double(imageWidth), y0 < Double(imageHeight) else {
            throw ImageError(.invalid, description: "the box \(region) lies outside the \(imageWidth)x\(imageHeight) image")
        }
        let pad = margin * max(x1 - x0, y1 - y0)
        (x0, y0, x1, y1) = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        if let aspectRatio, aspectRatio > 0 {
            let (w, h) = (x1 - x0, y1 - y0)
            if w / h < aspectRatio {
                let grow = (h * aspectRatio - w) / 2
                (x0, x1) = (x0 - grow, x1 + grow)
            } else {
                let grow = (w / aspectRatio - h) / 2
                (y0, y1) = (y0 - grow, y1 + grow)
            }
        }
        // Whole pixels covering the region (the same count on both sides of a square), shifted back inside where it
        // overhangs one edge, cut where it is larger than the image.
        func clamp(_ lo: Double, _ hi: Double, _ size: Int) -> (Int, Int) {
            var a = Int(lo.rounded(.down))
            var b = a + Int((hi - lo - 1e-9).rounded(.up)) + 1
            if a < 0 { b -= a; a = 0 }
            if b > size { a -= b - size; b = size }
            a = max(a, 0)
            return (a, max(b, a + 1))
        }
        let (left, right) = clamp(x0, x1, imageWidth)
        let (top, bottom) = clamp(y0, y1, imageHeight)
        return try CropBox(x: left, y: top, width: right - left, height: bottom - top)
    }

    /// The crop of a person: their COCO `bbox` when given, else the extent of their labelled keypoints.
    public func box(for person: COCOPerson, imageWidth: Int, imageHeight: Int) throws -> CropBox {
        if let bbox = person.bbox, bbox.count == 4, bbox[2] > 0, bbox[3] > 0 {
            return try box(region: bbox, imageWidth: imageWidth, imageHeight: imageHeight)
        }
        let labelled = person.pose.keypoints.filter(\.isLabelled)
        guard let minX = labelled.map(\.x).min(), let maxX = labelled.map(\.x).max(),
              let minY = labelled.map(\.y).min(), let maxY = labelled.map(\.y).max()
        else { throw ImageError(.invalid, description: "no bbox and no labelled keypoints to crop by") }
        // A single point or a line still gets a region one pixel wide.
        return try box(region: [minX, minY, max(maxX - minX, 1), max(maxY - minY, 1)], imageWidth: imageWidth, imageHeight: imageHeight)
    }
}

extension RGBImage {
    /// The pixels inside `box`; refused when the box does not lie inside the image.
    public func cropped(to box: CropBox) throws -> RGBImage {
        guard box.fits(width: width, height: height) else {
            throw ImageError(.invalid, description: "the crop \(box) does not lie inside the \(width)x\(height) image")
        }
        if box.x == 0, box.y == 0, box.width == width, box.height == height { return self }
        var out = [UInt8]()
        out.reserveCapacity(box.width * box.height * 3)
        for row in box.y..<(box.y + box.height) {
            let start = (row * width + box.x) * 3
            out += pixels[start..<(start + box.width * 3)]
        }
        return try RGBImage(width: box.width, height: box.height, pixels: out)
    }
}

extension EmbeddingModel {
    /// The embedding of an image (or of the part of it inside `box`), resized and normalised as the model's
    /// preprocessing declares.
    public func embed(image: RGBImage, box: CropBox? = nil) throws -> [Float] {
        let input = try box.map { try image.cropped(to: $0) } ?? image
        return try input.pixels.withUnsafeBufferPointer {
            try embed(pixels: $0, width: input.width, height: input.height, format: .rgb8)
        }
    }

    /// The embedding of a PNG or JPEG file (or of the part inside `box`, in the displayed frame).
    public func embed(contentsOf url: URL, box: CropBox? = nil) throws -> [Float] {
        try embed(image: try RGBImage(contentsOf: url), box: box)
    }

    /// Embeddings of several images, one row each, back to back; same-sized images go through as one batch.
    public func embed(images: [RGBImage]) throws -> [Float] {
        guard let first = images.first else { return [] }
        if images.allSatisfy({ $0.width == first.width && $0.height == first.height }) {
            let pixels = images.flatMap(\.pixels)
            return try pixels.withUnsafeBufferPointer {
                try embed(pixels: $0, width: first.width, height: first.height, format: .rgb8, count: images.count)
            }
        }
        var out: [Float] = []
        for image in images { out += try embed(image: image) }
        return out
    }
}
