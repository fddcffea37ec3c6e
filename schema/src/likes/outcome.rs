//! [`LikeOutcome`]: what a like or unlike did, the contract both backends' like paths answer with.

use crate::ids::PostId;
use crate::notifications::Delivery;

/// What a like or unlike did.
#[derive(Debug, Clone)]
pub struct LikeOutcome {
    pub post_id: PostId,
    pub liked: bool,
    pub like_count: i64,
    /// Monotonic per post; orders like-count updates that may arrive out of order.
    pub like_seq: i64,
    /// Whether this call changed anything (a repeated like or unlike does not).
    pub changed: bool,
    /// The notification this like committed (the liker's first like of the post) and the
    /// group it changed; or the group an unlike or a like again changed.
    pub delivery: Delivery,
}

impl LikeOutcome {
    /// A new like: the post's count and seq after it, and what it tells the author.
    pub(crate) fn added(
        post_id: PostId,
        (like_count, like_seq): (i64, i64),
        delivery: Delivery,
    ) -> Self {
        LikeOutcome {
            post_id,
            liked: true,
            like_count,
            like_seq,
            changed: true,
            delivery,
        }
    }

    /// A like that was already there: nothing changed, nobody is notified.
    pub(crate) fn already_liked(post_id: PostId, (like_count, like_seq): (i64, i64)) -> Self {
        LikeOutcome {
            post_id,
            liked: true,
            like_count,
            like_seq,
            changed: false,
            delivery: Delivery::default(),
        }
    }
}
