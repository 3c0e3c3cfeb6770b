//! What both sides of the layer need beside the frame format (`crate::wire`):
//! a buffer of bytes waiting to be handed on.

/// Bytes waiting to be handed on, consumed from the front.
#[derive(Default)]
pub(crate) struct Pending {
    buf: Vec<u8>,
    pos: usize,
}

impl Pending {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The buffer to append to.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Marks `n` bytes as handed on.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Gives the memory back when nothing waits.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = Self::default();
        }
    }
}
