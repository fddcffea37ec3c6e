// @generated automatically by Diesel CLI.

diesel::table! {
    blocks (id) {
        id -> Int8,
        blocker_id -> Int8,
        blocked_id -> Int8,
        created_at -> Timestamp,
    }
}

diesel::table! {
    comments (id) {
        id -> Int8,
        post_id -> Int8,
        author_id -> Int8,
        text -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    follow_notices (follower_id, followee_id) {
        follower_id -> Int8,
        followee_id -> Int8,
    }
}

diesel::table! {
    follows (follower_id, followee_id) {
        follower_id -> Int8,
        followee_id -> Int8,
        created_at -> Timestamp,
    }
}

diesel::table! {
    likes (post_id, user_id) {
        post_id -> Int8,
        user_id -> Int8,
        created_at -> Timestamp,
        unliked -> Bool,
        relikes -> Int4,
    }
}

diesel::table! {
    mutes (id) {
        id -> Int8,
        muter_id -> Int8,
        muted_id -> Int8,
        created_at -> Timestamp,
    }
}

diesel::table! {
    notification_groups (id) {
        id -> Int8,
        recipient_id -> Int8,
        kind -> Text,
        post_id -> Nullable<Int8>,
        post_key -> Int8,
        actor_count -> Int8,
        actors -> Text,
        latest_notification_id -> Int8,
        updated_at -> Timestamp,
        newest_at -> Timestamp,
        read -> Bool,
        open -> Bool,
        removed -> Bool,
        version -> Int8,
    }
}

diesel::table! {
    notification_preferences (user_id) {
        user_id -> Int8,
        like_inbox -> Bool,
        like_push -> Bool,
        comment_inbox -> Bool,
        comment_push -> Bool,
        follow_inbox -> Bool,
        follow_push -> Bool,
        from_following -> Bool,
    }
}

diesel::table! {
    notifications (id) {
        id -> Int8,
        recipient_id -> Int8,
        seq -> Int8,
        actor_id -> Int8,
        kind -> Text,
        post_id -> Nullable<Int8>,
        comment_id -> Nullable<Int8>,
        text -> Text,
        created_at -> Timestamp,
        read -> Bool,
        group_id -> Nullable<Int8>,
    }
}

diesel::table! {
    posts (id) {
        id -> Int8,
        author_id -> Int8,
        caption -> Text,
        media_key -> Text,
        width -> Int4,
        height -> Int4,
        created_at -> Timestamp,
        like_count -> Int8,
        like_seq -> Int8,
        comment_count -> Int8,
        thumbnail_key -> Nullable<Text>,
    }
}

diesel::table! {
    push_jobs (id) {
        id -> Int8,
        notification_id -> Int8,
        subscription_id -> Int8,
        created_at -> Timestamp,
        due_at -> Timestamp,
        expires_at -> Timestamp,
        attempts -> Int4,
        claimed_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    push_subscriptions (id) {
        id -> Int8,
        user_id -> Int8,
        token_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    revoked_tokens (revocation_id) {
        revocation_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    used_tickets (revocation_id) {
        revocation_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        display_name -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        follower_count -> Int8,
        following_count -> Int8,
        post_count -> Int8,
        notification_seq -> Int8,
        reach_version -> Int8,
        group_version -> Int8,
    }
}

diesel::joinable!(comments -> posts (post_id));
diesel::joinable!(comments -> users (author_id));
diesel::joinable!(notification_preferences -> users (user_id));
diesel::joinable!(notifications -> comments (comment_id));
diesel::joinable!(posts -> users (author_id));
diesel::joinable!(push_jobs -> notifications (notification_id));
diesel::joinable!(push_jobs -> push_subscriptions (subscription_id));
diesel::joinable!(push_subscriptions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    blocks,
    comments,
    follow_notices,
    follows,
    likes,
    mutes,
    notification_groups,
    notification_preferences,
    notifications,
    posts,
    push_jobs,
    push_subscriptions,
    revoked_tokens,
    used_tickets,
    users,
);
